/* interp.c - the E2B code interpreter (E2b-Sandbox-Port 49999, docs/e2b.md "Code interpreter"):
 * POST /execute runs a cell in a native code context and streams it as E2B's NDJSON lines
 * (execevents.c); /contexts lists, creates, removes and restarts contexts. Errors are plain
 * text, as E2B's server answers (the SDK shows a 404's body in its NotFoundError).
 * Keeps no state but the turns (interpturn.c): a sandbox's default context of a language is its
 * oldest context of that language (the manager lists them in creation order), made on first
 * use. A cell holds its context's turn from before its env_vars are set until they are back, so
 * no other cell of ours sees them or runs between the set, the cell and the restore. */
#include "e2b/e2b.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/encode.h"
#include "e2b/fspath.h"
#include "e2b/interpreq.h"
#include "e2b/interpturn.h"
#include "sandbox/manager.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/sync.h"
#include "util/text.h"
#include "util/timeutil.h"

/* Cells of ours wait for each other on their turn (interpturn.h). A context busy with an exec
 * from elsewhere (the native API: it says 409) is asked again after a delay that doubles from
 * the first to the most; the manager offers nothing to wait on. */
#define INTERP_BUSY_FIRST_MS 50
#define INTERP_BUSY_MAX_MS 500

typedef void interp_handler(const struct e2b_context *ctx, const struct e2b_request *req,
			    const char *context_id, struct api_response *resp);

/* --- answers --- */

static void respond_text(struct api_response *resp, unsigned status, const char *message)
{
	resp->status = status;
	resp->text = strdup(message);
	resp->text_len = resp->text != NULL ? strlen(resp->text) : 0;
	resp->content_type = "text/plain; charset=utf-8";
	if (resp->text == NULL)
		resp->status = 500;
}

static void respond_err(struct api_response *resp, struct ember_error **err)
{
	const struct ember_error *e = *err;

	resp->retry_after_s = e != NULL ? e->retry_after_s : 0;
	respond_text(resp, api_status_for(e != NULL ? e->kind : EMBER_E_INTERNAL),
		     e != NULL ? e->message : "out of memory");
	if (resp->status == 429 && resp->retry_after_s == 0)
		resp->retry_after_s = 1;
	ember_error_free(err);
}

/* Takes body; NULL (out of memory) is a 500. */
static void respond_json(struct api_response *resp, json_t *body)
{
	if (body == NULL) {
		respond_text(resp, 500, "out of memory");
		return;
	}
	resp->status = 200;
	resp->body = body;
}

/* A JSON text that is no object or array (what FastAPI answers for None or a string): the
 * server's JSON bodies are objects and arrays only. */
static void respond_json_text(struct api_response *resp, const char *text)
{
	respond_text(resp, 200, text);
	resp->content_type = "application/json";
}

static void respond_context_not_found(struct api_response *resp, const char *id)
{
	char shown[64], msg[128];

	text_escape_log(id, shown, sizeof(shown));
	snprintf(msg, sizeof(msg), "Context %s not found", shown);
	respond_text(resp, 404, msg);
}

/* {id, language, cwd}: the SDK's Context. */
static json_t *context_json(const struct sandbox_context *c, const char *cwd)
{
	return json_pack("{s:s, s:s, s:s}", "id", c->id, "language",
			 e2b_language_name(c->language), "cwd", cwd != NULL ? cwd : E2B_HOME);
}

/* E2B's default working directory, E2B_HOME, is the sandbox user's home: cwd as the native
 * context takes it (NULL: the pack's home directory; relative: under it). */
static const char *native_cwd(const char *cwd)
{
	size_t n = strlen(E2B_HOME);

	if (cwd == NULL || strncmp(cwd, E2B_HOME, n) != 0 || (cwd[n] != '\0' && cwd[n] != '/'))
		return cwd;
	while (cwd[n] == '/')
		n++;
	return cwd[n] == '\0' ? NULL : cwd + n;
}

/* --- default contexts --- */

/* The oldest context of language in the sandbox: 1 (id copied), 0 none, -1 error. */
static int oldest_context(struct manager *m, const char *sandbox_id,
			  enum proto_context_language language, char *id, size_t size,
			  struct ember_error **err)
{
	struct sandbox_context items[SANDBOX_CONTEXTS_MAX];
	size_t n, i;

	if (manager_context_list(m, sandbox_id, items, &n, err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (items[i].language == language) {
			snprintf(id, size, "%s", items[i].id);
			return 1;
		}
	}
	return 0;
}

/* The sandbox's default context of language, made when it has none. Two requests that make
 * one at once both keep the older: the other deletes its own. */
static int default_context(struct manager *m, const char *sandbox_id,
			   enum proto_context_language language, char *id, size_t size,
			   struct ember_error **err)
{
	struct sandbox_context_request creq = { .language = language };
	struct sandbox_context made;
	struct ember_error *ignored = NULL;
	int got = oldest_context(m, sandbox_id, language, id, size, err);

	if (got != 0)
		return got < 0 ? -1 : 0;
	if (manager_context_create(m, sandbox_id, &creq, &made, err) < 0)
		return -1;
	got = oldest_context(m, sandbox_id, language, id, size, err);
	if (got < 0)
		return -1;
	if (got == 0) /* deleted meanwhile: ours is it after all (and is gone too, a 404 later) */
		snprintf(id, size, "%s", made.id);
	else if (strcmp(id, made.id) != 0 &&
		 manager_context_delete(m, sandbox_id, made.id, &ignored) < 0)
		ember_error_free(&ignored);
	return 0;
}

/* --- POST /execute --- */

/* The client closed its end while its cell waited for the context. */
static bool client_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Whether a 409 from the exec can be the context's turn (it was busy with another cell, which
 * may have ended since: so it is asked whether the context is there, not whether it is busy)
 * rather than the sandbox's state (being destroyed: the context is not there any more). */
static bool context_present(struct manager *m, const char *sandbox_id, const char *context_id)
{
	struct sandbox_context c;
	struct ember_error *err = NULL;

	if (manager_context_get(m, sandbox_id, context_id, &c, &err) < 0) {
		ember_error_free(&err);
		return false;
	}
	return true;
}

static bool client_gone_arg(void *arg)
{
	return client_gone(*(const int *)arg);
}

/* The next delay of a backoff (*delay_ms 0: the first). */
static unsigned backoff_ms(unsigned *delay_ms)
{
	*delay_ms = *delay_ms == 0 ? INTERP_BUSY_FIRST_MS : *delay_ms * 2;
	if (*delay_ms > INTERP_BUSY_MAX_MS)
		*delay_ms = INTERP_BUSY_MAX_MS;
	return *delay_ms;
}

/* After a failed attempt: whether to try again (the context is busy with an exec that is not
 * one of our cells: ours wait for the turn) until the client (fd; -1: none) leaves or the
 * longest exec could have ended, after a backoff (*delay_ms). Frees err when so. */
static bool wait_busy(struct manager *m, const char *sandbox_id, int fd, const char *context_id,
		      int64_t deadline, unsigned *delay_ms, struct ember_error **err)
{
	if ((*err)->kind != EMBER_E_CONFLICT || time_mono_ms() >= deadline || client_gone(fd) ||
	    !context_present(m, sandbox_id, context_id))
		return false;
	ember_error_free(err);
	sleep_ms(backoff_ms(delay_ms));
	return true;
}

/* A cell of our own (env_vars) in the context, its output buffered; waits its turn. */
static int run_quiet(struct manager *m, const struct e2b_request *req, const char *context_id,
		     const char *code, struct channel_exec_result *res, struct ember_error **err)
{
	struct sandbox_exec_request exec = { .code = code, .code_len = strlen(code),
					     .context_id = context_id };
	int64_t deadline = time_mono_ms() + manager_max_exec_timeout_ms(m);
	unsigned delay_ms = 0;

	for (;;) {
		memset(res, 0, sizeof(*res));
		if (manager_exec(m, req->sandbox_id, &exec, res, err) == 0)
			break;
		if (!wait_busy(m, req->sandbox_id, req->client_fd, context_id, deadline, &delay_ms,
			       err))
			return -1;
	}
	if (res->exit.exit_code == 0 && !res->exit.context.has_error)
		return 0;
	channel_exec_result_release(res);
	return ember_error_set(err, EMBER_E_INVALID, 0, "env_vars could not be set in the context");
}

/* What ends a cell, on the stream's worker before its end_of_execution goes out: the restore of
 * its env_vars (code; NULL: none), then the context's turn goes back. The turn is borrowed:
 * handle_execute gives it back itself when the cell never started (cell_after_run never runs). */
struct cell_restore {
	char context_id[PROTO_CONTEXT_ID_MAX + 1];
	char *code;
	struct e2b_turn *turn;
};

static void restore_free(void *arg)
{
	struct cell_restore *r = arg;

	if (r == NULL)
		return;
	free(r->code);
	free(r);
}

/* Puts the variables back (the turn held): again while an exec from elsewhere holds the context,
 * until it is gone (a context gone or restarted has nothing left to restore). */
static void restore_run(struct manager *m, const char *sandbox_id, const struct cell_restore *r)
{
	struct sandbox_exec_request exec = { .code = r->code, .code_len = strlen(r->code),
					     .context_id = r->context_id };
	int64_t deadline = time_mono_ms() + manager_max_exec_timeout_ms(m);
	unsigned delay_ms = 0;

	for (;;) {
		struct channel_exec_result res = { 0 };
		struct ember_error *err = NULL;
		int ret = manager_exec(m, sandbox_id, &exec, &res, &err);

		channel_exec_result_release(&res);
		if (ret == 0 || !wait_busy(m, sandbox_id, -1, r->context_id, deadline, &delay_ms,
					   &err)) {
			ember_error_free(&err);
			return;
		}
	}
}

static void cell_after_run(struct manager *m, const char *sandbox_id, void *arg)
{
	struct cell_restore *r = arg;

	if (r->code != NULL)
		restore_run(m, sandbox_id, r);
	e2b_turn_release(r->turn);
	r->turn = NULL;
}

/* The code that puts back old (a JSON object: name → former value, null when unset). */
static char *restore_code(enum proto_context_language language, json_t *old)
{
	_cleanup_free_ char *text = json_dumps(old, JSON_COMPACT);
	_cleanup_json_ json_t *literal = text != NULL ? json_string(text) : NULL;
	_cleanup_free_ char *quoted = literal != NULL ? json_dumps(literal, JSON_ENCODE_ANY) : NULL;
	char *code = NULL;

	if (quoted == NULL)
		return NULL;
	/* A JSON string is a Python string literal; a JSON object a JavaScript literal. The Python
	 * code binds no global name and its value is None (no result, `_` untouched). */
	if (language == PROTO_LANG_PYTHON &&
	    asprintf(&code, "(lambda o, e: [e.pop(k, None) if v is None else e.__setitem__(k, v) "
			    "for k, v in o.items()])(__import__('json').loads(%s), "
			    "__import__('os').environ).clear()",
		     quoted) < 0)
		code = NULL;
	if (language == PROTO_LANG_NODE &&
	    asprintf(&code, "void Object.entries(%s).forEach(([k, v]) => { if (v === null) delete "
			    "process.env[k]; else process.env[k] = v; })",
		     text) < 0)
		code = NULL;
	return code;
}

/* env_vars for one cell, as E2B's server does them: set in the context before the cell (a cell
 * of their own, which also prints what they were), restored after it (cell->code, the code that
 * does so; the turn held from the set to the restore). Python and javascript contexts. */
static int set_env_vars(struct manager *m, const struct e2b_request *req, const char *context_id,
			json_t *env_vars, struct cell_restore *cell, struct ember_error **err)
{
	_cleanup_free_ char *vars = json_dumps(env_vars, JSON_COMPACT);
	_cleanup_free_ char *code = NULL;
	_cleanup_json_ json_t *old = NULL;
	struct channel_exec_result res = { 0 };
	struct sandbox_context c;
	int n = -1;

	if (vars == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (manager_context_get(m, req->sandbox_id, context_id, &c, err) < 0)
		return -1;
	/* A JSON object of strings is a Python dict literal and a JavaScript object literal. */
	if (c.language == PROTO_LANG_PYTHON)
		n = asprintf(&code, "print(__import__('json').dumps({k: __import__('os').environ"
				    ".get(k) for k in %s}), end='')\n__import__('os').environ"
				    ".update(%s)",
			     vars, vars);
	else if (c.language == PROTO_LANG_NODE)
		n = asprintf(&code, "process.stdout.write(JSON.stringify(Object.fromEntries("
				    "Object.keys(%s).map((k) => [k, process.env[k] ?? null]))));\n"
				    "void Object.assign(process.env, %s)",
			     vars, vars);
	else
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "env_vars work in python and javascript contexts: in bash, "
				       "export them in the code");
	if (n < 0)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (run_quiet(m, req, context_id, code, &res, err) < 0)
		return -1;
	old = json_loadb((const char *)res.stdout_data, res.stdout_len, 0, NULL);
	channel_exec_result_release(&res);
	if (!json_is_object(old) || (cell->code = restore_code(c.language, old)) == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, 0,
				       "the context did not say what env_vars replace");
	return 0;
}

/* Starts the cell's stream (its turn held), again while an exec from elsewhere holds the
 * context. restore (borrowed; its code may be NULL) runs after the cell and gives the turn
 * back: on success the stream owns that, on failure the caller. */
static int start_cell(const struct e2b_context *ctx, const struct e2b_request *req,
		      const struct e2b_execute_body *parsed, const char *context_id,
		      const struct cell_restore *restore, struct api_exec_stream **out,
		      struct ember_error **err)
{
	struct manager *m = ctx->api->manager;
	unsigned timeout_ms = manager_max_exec_timeout_ms(m);
	int64_t deadline = time_mono_ms() + timeout_ms;
	unsigned delay_ms = 0;

	for (;;) {
		/* The stream's worker outlives this request: the body's root owns what it reads
		 * (the code in the parsed body, and the context id), the hook its own copy. */
		json_t *root = json_pack("{s:O, s:s}", "request", parsed->root, "context_id",
					 context_id);
		struct api_exec_body body = {
			.root = root,
			.code = parsed->code,
			.code_len = parsed->code_len,
			.timeout_ms = timeout_ms,
			.context_id = json_string_value(json_object_get(root, "context_id")),
		};
		struct api_exec_after after = { .fn = cell_after_run, .free_arg = restore_free };
		struct cell_restore *copy = malloc(sizeof(*copy));

		if (copy != NULL) {
			*copy = *restore;
			copy->code = restore->code != NULL ? strdup(restore->code) : NULL;
		}
		if (root == NULL || copy == NULL || (restore->code != NULL && copy->code == NULL)) {
			restore_free(copy);
			json_decref(root);
			return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		}
		after.arg = copy;
		if (api_exec_stream_start_after(m, req->sandbox_id, &body, API_EVENTS_E2B_EXECUTE,
						&after, out, err) == 0)
			return 0;
		if (!wait_busy(m, req->sandbox_id, req->client_fd, context_id, deadline, &delay_ms,
			       err))
			return -1;
	}
}

static void handle_execute(const struct e2b_context *ctx, const struct e2b_request *req,
			   const char *unused, struct api_response *resp)
{
	struct manager *m = ctx->api->manager;
	struct e2b_execute_body parsed;
	struct cell_restore cell = { .code = NULL, .turn = NULL };
	struct ember_error *err = NULL;
	char *id = cell.context_id;
	const size_t id_size = sizeof(cell.context_id);
	int fd = req->client_fd;
	enum proto_context_language language;

	(void)unused;
	if (e2b_parse_execute(req->body, req->body_len, &parsed, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (parsed.context_id != NULL) {
		if (!proto_context_id_valid(parsed.context_id)) {
			respond_context_not_found(resp, parsed.context_id);
			goto out;
		}
		snprintf(id, id_size, "%s", parsed.context_id);
	} else {
		language = parsed.language != PROTO_LANG_NONE ? parsed.language : PROTO_LANG_PYTHON;
		if (default_context(m, req->sandbox_id, language, id, id_size, &err) < 0)
			goto fail;
	}
	/* E2B's server queues a context's cells: ours wait for the turn, held until the cell's
	 * env_vars are back (the stream's worker gives it back once the cell started). */
	if (e2b_turn_take(req->sandbox_id, id, time_mono_ms() + manager_max_exec_timeout_ms(m),
			  client_gone_arg, &fd, &cell.turn, &err) < 0)
		goto fail;
	if (parsed.env_vars != NULL && set_env_vars(m, req, id, parsed.env_vars, &cell, &err) < 0)
		goto fail;
	if (start_cell(ctx, req, &parsed, id, &cell, &resp->events, &err) < 0) {
		if (cell.code != NULL) /* the cell never ran: the variables go back now */
			restore_run(m, req->sandbox_id, &cell);
		goto fail;
	}
	cell.turn = NULL; /* the stream's now */
	resp->events_format = API_EVENTS_E2B_EXECUTE;
	resp->status = 200;
	goto out;
fail:
	if (err != NULL && err->kind == EMBER_E_NOT_FOUND && parsed.context_id != NULL &&
	    strstr(err->message, "context") != NULL) {
		ember_error_free(&err);
		respond_context_not_found(resp, parsed.context_id);
	} else {
		respond_err(resp, &err);
	}
out:
	e2b_turn_release(cell.turn);
	free(cell.code);
	e2b_execute_body_release(&parsed);
}

/* --- /contexts --- */

static void handle_contexts_list(const struct e2b_context *ctx, const struct e2b_request *req,
				 const char *unused, struct api_response *resp)
{
	struct sandbox_context items[SANDBOX_CONTEXTS_MAX];
	struct ember_error *err = NULL;
	json_t *arr;
	size_t n, i;

	(void)unused;
	if (manager_context_list(ctx->api->manager, req->sandbox_id, items, &n, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	arr = json_array();
	for (i = 0; arr != NULL && i < n; i++) {
		if (items[i].opening)
			continue;
		if (json_array_append_new(arr, context_json(&items[i], NULL)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	respond_json(resp, arr);
}

/* A new context. When the sandbox has no context of that language yet, its default one is
 * made first: E2B's default contexts exist from the start, so a context made here is never
 * the one runCode without a context uses. */
static void handle_context_create(const struct e2b_context *ctx, const struct e2b_request *req,
				  const char *unused, struct api_response *resp)
{
	struct manager *m = ctx->api->manager;
	struct e2b_context_body parsed;
	struct sandbox_context_request creq = { 0 };
	struct sandbox_context made;
	struct ember_error *err = NULL;
	char id[PROTO_CONTEXT_ID_MAX + 1];

	(void)unused;
	if (e2b_parse_context_create(req->body, req->body_len, &parsed, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	creq.language = parsed.language != PROTO_LANG_NONE ? parsed.language : PROTO_LANG_PYTHON;
	creq.cwd = native_cwd(parsed.cwd);
	if (default_context(m, req->sandbox_id, creq.language, id, sizeof(id), &err) < 0 ||
	    manager_context_create(m, req->sandbox_id, &creq, &made, &err) < 0)
		respond_err(resp, &err);
	else
		respond_json(resp, context_json(&made, parsed.cwd));
	e2b_context_body_release(&parsed);
}

static void handle_context_delete(const struct e2b_context *ctx, const struct e2b_request *req,
				  const char *context_id, struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (manager_context_delete(ctx->api->manager, req->sandbox_id, context_id, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json_text(resp, "null");
}

static void handle_context_restart(const struct e2b_context *ctx, const struct e2b_request *req,
				   const char *context_id, struct api_response *resp)
{
	struct sandbox_context c;
	struct ember_error *err = NULL;

	if (manager_context_restart(ctx->api->manager, req->sandbox_id, context_id, &c, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json_text(resp, "null");
}

static void handle_health(const struct e2b_context *ctx, const struct e2b_request *req,
			  const char *unused, struct api_response *resp)
{
	(void)ctx, (void)req, (void)unused;
	respond_json_text(resp, "\"OK\"");
}

/* --- dispatch --- */

/* path: prefix, then (with_id) one segment (the context id), then suffix. */
static const struct interp_route {
	const char *method;
	const char *prefix;
	bool with_id;
	const char *suffix;
	interp_handler *handler;
} interp_routes[] = {
	{ "POST", "/execute", false, "", handle_execute },
	{ "GET", "/contexts", false, "", handle_contexts_list },
	{ "POST", "/contexts", false, "", handle_context_create },
	{ "DELETE", "/contexts/", true, "", handle_context_delete },
	{ "POST", "/contexts/", true, "/restart", handle_context_restart },
	{ "GET", "/health", false, "", handle_health },
};

/* Whether path matches the row; *id gets the segment (bounded, NUL-terminated). */
static bool route_match(const struct interp_route *r, const char *path, char *id, size_t size)
{
	size_t n = strlen(r->prefix), seg;

	if (strncmp(path, r->prefix, n) != 0)
		return false;
	path += n;
	if (!r->with_id)
		return strcmp(path, r->suffix) == 0;
	seg = strcspn(path, "/");
	if (seg == 0 || strcmp(path + seg, r->suffix) != 0)
		return false;
	/* A longer segment is cut: too long for any id of ours, so still no valid one. */
	snprintf(id, size, "%.*s", (int)(seg < size ? seg : size - 1), path);
	return true;
}

/* "sb_" and 32 hex digits: nothing else reaches the manager. */
static bool sandbox_id_shape_ok(const char *id)
{
	size_t i, n = strlen(SANDBOX_ID_PREFIX);

	if (strlen(id) != SANDBOX_ID_LEN || strncmp(id, SANDBOX_ID_PREFIX, n) != 0)
		return false;
	for (i = n; i < SANDBOX_ID_LEN; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return true;
}

void e2b_interp_route(const struct e2b_context *ctx, const struct e2b_request *req,
		      struct api_response *resp)
{
	char id[PROTO_CONTEXT_ID_MAX + 2], shown[64], msg[160];
	bool path_known = false;
	size_t i;

	if (!sandbox_id_shape_ok(req->sandbox_id)) {
		text_escape_log(req->sandbox_id, shown, sizeof(shown));
		snprintf(msg, sizeof(msg), "sandbox %s not found", shown);
		respond_text(resp, 404, msg);
		return;
	}
	for (i = 0; i < sizeof(interp_routes) / sizeof(interp_routes[0]); i++) {
		const struct interp_route *r = &interp_routes[i];
		bool matched = route_match(r, req->path, id, sizeof(id));

		if (!matched)
			continue;
		path_known = true;
		if (strcmp(req->method, r->method) != 0)
			continue;
		if (r->with_id && !proto_context_id_valid(id)) {
			respond_context_not_found(resp, id);
			return;
		}
		r->handler(ctx, req, r->with_id ? id : NULL, resp);
		return;
	}
	if (path_known) {
		respond_text(resp, 405, "Method Not Allowed");
		return;
	}
	text_escape_log(req->path, shown, sizeof(shown));
	snprintf(msg, sizeof(msg), "%s is not a code interpreter path (/execute, /contexts)", shown);
	respond_text(resp, 404, msg);
}
