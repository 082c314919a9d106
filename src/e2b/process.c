/* process.c - envd's process.Process service (the SDK's `sandbox.commands`) over Connect RPC,
 * mapped onto the sandbox's native background processes (sandbox/procs.h through the manager):
 *   Start       a background process running the request's argv (the SDK's /bin/bash -l -c
 *               CMD), then its events as a Connect stream: start {pid}, data, end
 *   Connect     the same stream for a running process, from now on (no replay)
 *   List        the running ones, with the argv, environment and directory they got
 *   SendInput / CloseStdin / SendSignal   stdin bytes, EOF, SIGKILL or SIGTERM (its group)
 *   Update, StreamInput, any PTY          unimplemented, with a message saying so
 * Like envd, a process outlives the stream that started it (a client that goes away stops
 * following, never kills) and ends at the call's Connect-Timeout-Ms (the SDK's timeoutMs,
 * 60 s unless given; 0: never), which the native process carries as its timeout. Only
 * running processes exist for the E2B calls: an ended one is not_found, as envd forgets it.
 * The pid the SDK sees is the guest pid the native API uses. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/execstream.h"
#include "e2b/connect.h"
#include "e2b/e2b.h"
#include "e2b/fspath.h"
#include "e2b/processreq.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"

#define SERVICE_PREFIX "/process.Process/"

struct call {
	const struct e2b_context *ctx;
	const struct e2b_request *req;
	struct api_response *resp;
	bool stream;
	json_t *msg;
};

/* --- answers --- */

/* An error of a streaming call: HTTP 200 and the end-of-stream message with the error (the
 * SDK reads a stream's errors only there). */
static void stream_error(struct api_response *resp, const char *code, const char *message)
{
	struct buf text = { 0 };
	struct ember_error *err = NULL;

	if (e2b_connect_end(&text, code, message, &err) < 0) {
		ember_error_free(&err);
		buf_release(&text);
		e2b_error_connect_msg(resp, "internal", "out of memory");
		return;
	}
	resp->status = 200;
	resp->text = (char *)text.data;
	resp->text_len = text.len;
	resp->content_type = E2B_CONNECT_TYPE_STREAM;
}

static void fail_code(struct call *c, const char *code, const char *message)
{
	if (c->stream)
		stream_error(c->resp, code, message);
	else
		e2b_error_connect_msg(c->resp, code, message);
}

/* Fails with err's own code and frees it. */
static void fail(struct call *c, struct ember_error **err)
{
	fail_code(c, e2b_connect_code((*err)->kind), (*err)->message);
	ember_error_free(err);
}

/* The sandbox itself is not there or not usable: what E2B's proxy answers for a sandbox that
 * is gone (502), which the SDK reports as the sandbox having timed out or been killed. */
static void fail_sandbox(struct call *c, struct ember_error **err)
{
	const char *code = (*err)->kind == EMBER_E_NOT_FOUND || (*err)->kind == EMBER_E_CONFLICT ||
					   (*err)->kind == EMBER_E_GUEST
				   ? "unavailable"
				   : e2b_connect_code((*err)->kind);

	fail_code(c, code, (*err)->message);
	ember_error_free(err);
}

static void answer(struct call *c, json_t *body)
{
	if (body == NULL) {
		e2b_error_connect_msg(c->resp, "internal", "out of memory");
		return;
	}
	c->resp->status = 200;
	c->resp->body = body;
}

/* --- finding a process --- */

/* The sandbox's process table; sandbox-level failures are answered here. */
static struct procs *sandbox_procs(struct call *c)
{
	struct ember_error *err = NULL;
	struct procs *procs = NULL;

	if (manager_procs(c->ctx->api->manager, c->req->sandbox_id, &procs, &err) < 0) {
		fail_sandbox(c, &err);
		return NULL;
	}
	return procs;
}

/* The running process sel names (*pid); NULL (answered) when there is none. On success the
 * caller holds the returned table reference. */
static struct procs *find_running(struct call *c, const struct e2b_process_selector *sel,
				  int32_t *pid)
{
	_cleanup_free_ struct procs_info *infos = NULL;
	struct ember_error *err = NULL;
	struct procs *procs = sandbox_procs(c);
	size_t count = 0, i;
	char msg[128];

	if (procs == NULL)
		return NULL;
	if (procs_list(procs, &infos, &count, &err) < 0) {
		procs_unref(procs);
		fail(c, &err);
		return NULL;
	}
	for (i = 0; i < count; i++) {
		if (infos[i].state != PROCS_RUNNING)
			continue;
		if (sel->by_tag ? sel->tag[0] != '\0' && strcmp(infos[i].tag, sel->tag) == 0
				: infos[i].pid >= 0 && (uint32_t)infos[i].pid == sel->pid) {
			*pid = infos[i].pid;
			return procs;
		}
	}
	procs_unref(procs);
	if (sel->by_tag)
		snprintf(msg, sizeof(msg), "process with tag %s not found", sel->tag);
	else
		snprintf(msg, sizeof(msg), "process with pid %u not found", sel->pid);
	fail_code(c, "not_found", msg);
	return NULL;
}

/* --- the stream of one process's events --- */

/* Answers with the Connect stream of pid's events (takes procs). */
static void follow(struct call *c, struct procs *procs, int32_t pid, bool from_now)
{
	struct api_follow_options opts = {
		.follow = true,
		.from_now = from_now,
		.start_event = true,
		.keepalive_ms = e2b_connect_keepalive_s(c->req->keepalive_ping) * 1000u,
	};
	struct ember_error *err = NULL;

	if (api_exec_stream_follow_with(procs, pid, &opts, API_EVENTS_CONNECT, &c->resp->events,
					&err) < 0) {
		fail(c, &err);
		return;
	}
	c->resp->events_format = API_EVENTS_CONNECT;
	c->resp->status = 200;
}

/* --- the methods --- */

/* NAME=value in req's environment unless the request set NAME (or there is no room left). */
static int default_env(struct e2b_start_request *req, const char *name, const char *value,
		       struct ember_error **err)
{
	size_t i, n = strlen(name);

	for (i = 0; i < req->envc; i++) {
		if (strncmp(req->env[i], name, n) == 0 && req->env[i][n] == '=')
			return 0;
	}
	if (req->envc >= PROTO_ENV_MAX)
		return 0;
	if (asprintf(&req->env[req->envc], "%s=%s", name, value) < 0) {
		req->env[req->envc] = NULL;
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	}
	req->envc++;
	return 0;
}

/* What envd gives a command of the user `user`: it starts in the home directory, /home/user
 * (in our packs a link to the sandbox user's home), with HOME, USER and PWD naming them as
 * there, so `pwd`, `echo $HOME` and `~` read as under E2B. */
static int as_e2b_user(struct e2b_start_request *req, struct ember_error **err)
{
	if (req->cwd == NULL && (req->cwd = strdup(E2B_HOME)) == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (default_env(req, "HOME", E2B_HOME, err) < 0 || default_env(req, "USER", "user", err) < 0 ||
	    default_env(req, "PWD", req->cwd, err) < 0)
		return -1;
	return 0;
}

static void method_start(struct call *c)
{
	struct e2b_start_request start = { .argc = 0 };
	struct sandbox_process_request spr;
	struct ember_error *err = NULL;
	struct procs_info info;
	struct procs *procs;
	uint32_t timeout_ms;

	if (e2b_connect_timeout(c->req->connect_timeout, &timeout_ms, &err) < 0 ||
	    e2b_parse_start(c->msg, &start, &err) < 0) {
		fail(c, &err);
		return;
	}
	if (as_e2b_user(&start, &err) < 0) {
		e2b_start_request_release(&start);
		fail(c, &err);
		return;
	}
	if (start.has_pty) {
		e2b_start_request_release(&start);
		fail_code(c, "unimplemented",
			  "emberd has no PTY: sandbox.pty is not supported (commands.run works, "
			  "without a terminal)");
		return;
	}
	spr = (struct sandbox_process_request){
		.argv = start.argv, .argc = start.argc, .env = start.env, .envc = start.envc,
		.cwd = start.cwd, .has_stdin = start.has_stdin, .tag = start.tag,
		.timeout_ms = timeout_ms,
	};
	if (manager_process_start(c->ctx->api->manager, c->req->sandbox_id, &spr, &info,
				  &err) < 0) {
		e2b_start_request_release(&start);
		if (err->kind == EMBER_E_NOT_FOUND || err->kind == EMBER_E_CONFLICT) {
			fail_sandbox(c, &err);
			return;
		}
		if (err->kind == EMBER_E_GUEST && !ember_error_is_static(err))
			err->kind = EMBER_E_INVALID; /* the guest could not start it: envd's code */
		fail(c, &err);
		return;
	}
	e2b_start_request_release(&start);
	procs = sandbox_procs(c);
	if (procs != NULL)
		follow(c, procs, info.pid, false); /* all of it: the stream started with it */
	if (c->resp->events == NULL) {
		/* No stream, so the client never learns the pid: the process must not run on
		 * unreachable (until its timeout, or forever without one). Best effort. */
		if (manager_process_signal(c->ctx->api->manager, c->req->sandbox_id, info.pid,
					   SIGKILL, &err) < 0)
			ember_error_free(&err);
	}
}

static void method_connect(struct call *c)
{
	struct e2b_process_selector sel;
	struct ember_error *err = NULL;
	struct procs *procs;
	int32_t pid = 0;

	if (e2b_parse_selector_of(c->msg, &sel, &err) < 0) {
		fail(c, &err);
		return;
	}
	procs = find_running(c, &sel, &pid);
	if (procs != NULL)
		follow(c, procs, pid, true);
}

/* envs as ProcessConfig's map, from "NAME=value" strings. */
static json_t *envs_object(char *const *env, size_t envc)
{
	json_t *obj = json_object();
	size_t i;

	for (i = 0; obj != NULL && i < envc; i++) {
		const char *eq = strchr(env[i], '=');
		_cleanup_free_ char *name = eq != NULL ? strndup(env[i], (size_t)(eq - env[i]))
						       : NULL;

		if (name != NULL)
			json_object_set_new(obj, name, json_string(eq + 1));
	}
	return obj;
}

/* ProcessInfo {config: {cmd, args, envs, cwd?}, pid, tag?}; NULL when it ended meanwhile. */
static json_t *process_info(struct procs *procs, const struct procs_info *info)
{
	struct procs_command command;
	struct ember_error *err = NULL;
	json_t *args, *config, *obj;
	size_t i;

	if (procs_command(procs, info->pid, &command, &err) < 0) {
		ember_error_free(&err);
		return NULL;
	}
	args = json_array();
	for (i = 1; args != NULL && i < command.argc; i++)
		json_array_append_new(args, json_string(command.argv[i]));
	config = json_pack("{s:s, s:o*, s:o*}", "cmd", command.argc > 0 ? command.argv[0] : "",
			   "args", args, "envs", envs_object(command.env, command.envc));
	if (config != NULL && command.cwd != NULL)
		json_object_set_new(config, "cwd", json_string(command.cwd));
	obj = json_pack("{s:o*, s:I}", "config", config, "pid", (json_int_t)info->pid);
	if (obj != NULL && info->tag[0] != '\0')
		json_object_set_new(obj, "tag", json_string(info->tag));
	procs_command_release(&command);
	return obj;
}

static void method_list(struct call *c)
{
	_cleanup_free_ struct procs_info *infos = NULL;
	struct ember_error *err = NULL;
	struct procs *procs = sandbox_procs(c);
	size_t count = 0, i;
	json_t *list;

	if (procs == NULL)
		return;
	if (procs_list(procs, &infos, &count, &err) < 0) {
		procs_unref(procs);
		fail(c, &err);
		return;
	}
	list = json_array();
	for (i = 0; list != NULL && i < count; i++) {
		json_t *info = infos[i].state == PROCS_RUNNING ? process_info(procs, &infos[i])
							       : NULL;

		if (info != NULL)
			json_array_append_new(list, info);
	}
	procs_unref(procs);
	answer(c, list != NULL ? json_pack("{s:o}", "processes", list) : NULL);
}

/* stdin bytes (or, fin, its end) for the process sel names. */
static void send_stdin(struct call *c, const struct e2b_process_selector *sel,
		       const uint8_t *data, size_t len, bool fin)
{
	struct ember_error *err = NULL;
	struct procs *procs;
	int32_t pid = 0;

	procs = find_running(c, sel, &pid);
	if (procs == NULL)
		return;
	procs_unref(procs);
	if (manager_process_stdin(c->ctx->api->manager, c->req->sandbox_id, pid, data, len, fin,
				  &err) < 0) {
		fail(c, &err);
		return;
	}
	answer(c, json_object());
}

static void method_send_input(struct call *c)
{
	_cleanup_free_ uint8_t *data = NULL;
	struct e2b_process_selector sel;
	struct ember_error *err = NULL;
	size_t len = 0;
	bool pty = false;

	if (e2b_parse_send_input(c->msg, &sel, &data, &len, &pty, &err) < 0) {
		fail(c, &err);
		return;
	}
	if (pty) {
		fail_code(c, "unimplemented", "emberd has no PTY: send stdin to a command instead");
		return;
	}
	send_stdin(c, &sel, data, len, false);
}

static void method_close_stdin(struct call *c)
{
	struct e2b_process_selector sel;
	struct ember_error *err = NULL;

	if (e2b_parse_selector_of(c->msg, &sel, &err) < 0) {
		fail(c, &err);
		return;
	}
	send_stdin(c, &sel, NULL, 0, true);
}

static void method_send_signal(struct call *c)
{
	struct e2b_process_selector sel;
	struct ember_error *err = NULL;
	struct procs *procs;
	int32_t pid = 0;
	int sig = 0;

	if (e2b_parse_send_signal(c->msg, &sel, &sig, &err) < 0) {
		fail(c, &err);
		return;
	}
	procs = find_running(c, &sel, &pid);
	if (procs == NULL)
		return;
	procs_unref(procs);
	if (manager_process_signal(c->ctx->api->manager, c->req->sandbox_id, pid, sig, &err) < 0) {
		/* it ended between the lookup and the signal: as envd, not found */
		fail_code(c, err->kind == EMBER_E_CONFLICT ? "not_found"
							  : e2b_connect_code(err->kind),
			  err->message);
		ember_error_free(&err);
		return;
	}
	answer(c, json_object());
}

static void method_update(struct call *c)
{
	struct e2b_process_selector sel;
	struct ember_error *err = NULL;

	if (e2b_parse_selector_of(c->msg, &sel, &err) < 0) {
		fail(c, &err);
		return;
	}
	fail_code(c, "unimplemented", "emberd has no PTY: there is no terminal to resize");
}

static const struct {
	const char *name;
	bool stream;              /* server-streaming (the others are unary) */
	void (*handler)(struct call *c);
} methods[] = {
	{ "Start", true, method_start },
	{ "Connect", true, method_connect },
	{ "List", false, method_list },
	{ "SendInput", false, method_send_input },
	{ "CloseStdin", false, method_close_stdin },
	{ "SendSignal", false, method_send_signal },
	{ "Update", false, method_update },
};

void e2b_process_route(const struct e2b_context *ctx, const struct e2b_request *req,
		       struct api_response *resp)
{
	const char *name = req->path + strlen(SERVICE_PREFIX);
	struct call c = { .ctx = ctx, .req = req, .resp = resp };
	struct ember_error *err = NULL;
	size_t i;

	if (strcmp(name, "StreamInput") == 0) {
		e2b_error_connect_msg(resp, "unimplemented",
				      "StreamInput (client streaming) is not supported: send stdin "
				      "with SendInput, as the JS SDK does");
		return;
	}
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(methods[i].name, name) == 0)
			break;
	}
	if (i == sizeof(methods) / sizeof(methods[0])) {
		e2b_error_connect_msg(resp, "unimplemented", "no such method of process.Process");
		resp->status = 404; /* as a Connect server answers an unknown procedure */
		return;
	}
	c.stream = methods[i].stream;
	if (strcmp(req->method, "POST") != 0) {
		e2b_error_connect_msg(resp, "unimplemented", "Connect calls are POSTs");
		resp->status = 405;
		snprintf(resp->allow, sizeof(resp->allow), "POST");
		return;
	}
	if (!e2b_connect_content_type_ok(req->content_type, c.stream)) {
		e2b_error_connect_msg(resp, "invalid_argument",
				      c.stream ? "this call wants Content-Type "
						 "application/connect+json"
					       : "this call wants Content-Type application/json");
		resp->status = 415;
		return;
	}
	if (!api_valid_sandbox_id(req->sandbox_id)) {
		fail_code(&c, "unavailable", "no such sandbox (E2b-Sandbox-Id)");
		return;
	}
	if (e2b_username(req->authorization, NULL, &err) < 0 ||
	    e2b_connect_request((const uint8_t *)req->body, req->body_len, c.stream, &c.msg,
				&err) < 0) {
		fail(&c, &err);
		return;
	}
	methods[i].handler(&c);
	json_decref(c.msg);
}
