/* mcptools.c - the MCP tools: one row per tool ({name, description, schemas, handler}) and
 * one small handler per row, each a thin layer over the manager (docs/mcp.md). A handler
 * returns its structured output and, when plain JSON is not the best text for a model, the
 * text; failures come back as errors and become isError results in one place. */
#include "api/mcptools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/requests.h"
#include "proto/ctxmsg.h"
#include "sandbox/procs.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/sync.h"
#include "util/text.h"

#define KIND EMBER_E_INVALID
#define SESSION_LABEL "mcp_session"

struct tool_call {
	struct manager *m;
	struct mcp_workspace *ws;
	json_t *args;      /* an object (an empty one when the call had none) */
	json_t *out;       /* structuredContent, set by the handler */
	struct buf text;   /* the text content; empty: the JSON of out */
};

typedef int tool_handler(struct tool_call *call, struct ember_error **err);

struct tool {
	const char *name;
	const char *title;
	const char *description;
	const char *input_schema;  /* JSON text */
	const char *output_schema; /* JSON text */
	tool_handler *handler;
};

/* --- workspace --- */

void mcp_workspace_init(struct mcp_workspace *ws, const char *session_id)
{
	memset(ws, 0, sizeof(*ws));
	pthread_mutex_init(&ws->lock, NULL);
	cond_init_monotonic(&ws->changed);
	snprintf(ws->label, sizeof(ws->label), "%s", session_id);
}

void mcp_workspace_end(struct mcp_workspace *ws, struct manager *m)
{
	char owned[MCP_SESSION_SANDBOXES_MAX][SANDBOX_ID_LEN + 1];
	struct ember_error *err = NULL;
	size_t i, n;

	pthread_mutex_lock(&ws->lock);
	ws->ended = true;
	n = ws->nowned;
	memcpy(owned, ws->owned, sizeof(owned));
	ws->nowned = 0;
	ws->nslots = 0;
	pthread_mutex_unlock(&ws->lock);
	/* Outside the lock: a delete waits for the VM to go. One already gone is not an error. */
	for (i = 0; i < n; i++) {
		manager_destroy(m, owned[i], &err);
		ember_error_free(&err);
	}
}

void mcp_workspace_destroy(struct mcp_workspace *ws)
{
	pthread_mutex_destroy(&ws->lock);
	pthread_cond_destroy(&ws->changed);
}

static void disown(struct mcp_workspace *ws, const char *id);

/* Whether the manager still has sandbox id (one that timed out or was deleted through the REST
 * API or another session is gone, and the session must stop counting it). */
static bool sandbox_exists(struct manager *m, const char *id)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;
	bool gone;

	if (manager_get(m, id, &info, &err) == 0)
		return true;
	gone = err->kind == EMBER_E_NOT_FOUND;
	ember_error_free(&err);
	return !gone;
}

/* Forgets the session's sandboxes that no longer exist (each looked up outside the lock). */
static void prune_gone(struct tool_call *call)
{
	char owned[MCP_SESSION_SANDBOXES_MAX][SANDBOX_ID_LEN + 1];
	size_t i, n;

	pthread_mutex_lock(&call->ws->lock);
	n = call->ws->nowned;
	memcpy(owned, call->ws->owned, n * sizeof(owned[0]));
	pthread_mutex_unlock(&call->ws->lock);
	for (i = 0; i < n; i++) {
		if (!sandbox_exists(call->m, owned[i]))
			disown(call->ws, owned[i]);
	}
}

/* Takes a new sandbox into the session (it is deleted with it). A session that ended meanwhile,
 * or one at its limit even after forgetting sandboxes that are gone, does not take it: it is
 * deleted now and the call fails. */
static int adopt(struct tool_call *call, const char *id, struct ember_error **err)
{
	struct mcp_workspace *ws = call->ws;
	struct ember_error *ignored = NULL;
	bool ok;

	pthread_mutex_lock(&ws->lock);
	if (!ws->ended && ws->nowned >= MCP_SESSION_SANDBOXES_MAX) {
		pthread_mutex_unlock(&ws->lock);
		prune_gone(call);
		pthread_mutex_lock(&ws->lock);
	}
	ok = !ws->ended && ws->nowned < MCP_SESSION_SANDBOXES_MAX;
	if (ok)
		snprintf(ws->owned[ws->nowned++], SANDBOX_ID_LEN + 1, "%s", id);
	pthread_mutex_unlock(&ws->lock);
	if (ok)
		return 0;
	manager_destroy(call->m, id, &ignored);
	ember_error_free(&ignored);
	return ember_error_set(err, EMBER_E_CAPACITY, 0,
			       "this MCP session has ended or owns %u sandboxes already (delete "
			       "one with sandbox_delete)", MCP_SESSION_SANDBOXES_MAX);
}

/* The session no longer owns id (deleted): its slot, if any, goes too. */
static void disown(struct mcp_workspace *ws, const char *id)
{
	size_t i;

	pthread_mutex_lock(&ws->lock);
	for (i = 0; i < ws->nowned; i++) {
		if (strcmp(ws->owned[i], id) == 0) {
			memmove(ws->owned[i], ws->owned[i + 1],
				(ws->nowned - i - 1) * sizeof(ws->owned[0]));
			ws->nowned--;
			break;
		}
	}
	for (i = 0; i < ws->nslots; i++) {
		if (strcmp(ws->slots[i].sandbox_id, id) == 0) {
			memmove(&ws->slots[i], &ws->slots[i + 1],
				(ws->nslots - i - 1) * sizeof(ws->slots[0]));
			ws->nslots--;
			break;
		}
	}
	pthread_mutex_unlock(&ws->lock);
}

static int create_sandbox(struct tool_call *call, const char *pack, unsigned timeout_s,
			  struct sandbox_info *info, struct ember_error **err)
{
	struct sandbox_create_request req = { .language_pack = pack, .timeout_s = timeout_s };
	struct sandbox_labels labels = { 0 };

	if (sandbox_labels_add(&labels, SESSION_LABEL, call->ws->label, strlen(call->ws->label),
			       err) < 0)
		return -1;
	req.labels = &labels;
	if (manager_create_sandbox(call->m, &req, info, err) < 0)
		return -1;
	return adopt(call, info->id, err);
}

/* run_code's sandbox and context for language: the session's, made on first use. One maker at
 * a time (the others wait for it, then find its slot), never under the lock. */
static int code_slot(struct tool_call *call, const char *language, struct mcp_code_slot *out,
		     struct ember_error **err)
{
	struct mcp_workspace *ws = call->ws;
	struct sandbox_context_request creq = { .language = proto_context_language_parse(language) };
	struct sandbox_context context;
	struct sandbox_info info;
	struct ember_error *ignored = NULL;
	size_t i;
	int ret;

	pthread_mutex_lock(&ws->lock);
	for (;;) { /* a slot that exists is used at once, even while another one is made */
		for (i = 0; i < ws->nslots; i++) {
			if (strcmp(ws->slots[i].language, language) == 0) {
				*out = ws->slots[i];
				pthread_mutex_unlock(&ws->lock);
				return 0;
			}
		}
		if (!ws->creating)
			break;
		pthread_cond_wait(&ws->changed, &ws->lock);
	}
	ws->creating = true;
	pthread_mutex_unlock(&ws->lock);

	memset(out, 0, sizeof(*out));
	ret = create_sandbox(call, language, 0, &info, err);
	if (ret == 0) {
		ret = manager_context_create(call->m, info.id, &creq, &context, err);
		if (ret < 0) {
			disown(ws, info.id);
			manager_destroy(call->m, info.id, &ignored);
			ember_error_free(&ignored);
		}
	}
	pthread_mutex_lock(&ws->lock);
	if (ret == 0 && ws->nslots < ARRAY_SIZE(ws->slots)) {
		snprintf(out->language, sizeof(out->language), "%s", language);
		snprintf(out->sandbox_id, sizeof(out->sandbox_id), "%s", info.id);
		snprintf(out->context_id, sizeof(out->context_id), "%s", context.id);
		ws->slots[ws->nslots++] = *out;
	}
	ws->creating = false;
	pthread_cond_broadcast(&ws->changed);
	pthread_mutex_unlock(&ws->lock);
	return ret;
}

/* --- arguments --- */

/* Refuses a key the tool does not take (a misspelt one would otherwise be silently ignored). */
static int check_keys(json_t *args, const char *const *names, struct ember_error **err)
{
	const char *key;
	json_t *value;
	size_t i;

	json_object_foreach(args, key, value) {
		(void)value;
		for (i = 0; names[i] != NULL; i++) {
			if (strcmp(key, names[i]) == 0)
				break;
		}
		if (names[i] == NULL)
			return ember_error_set(err, KIND, 0, "unknown argument `%.64s`", key);
	}
	return 0;
}

static int arg_string(json_t *args, const char *key, bool required, size_t max,
		      const char **out, size_t *len, struct ember_error **err)
{
	size_t ignored;

	*out = NULL;
	return json_get_string(args, key, required, max, out, len != NULL ? len : &ignored, KIND,
			       err);
}

/* An optional whole number in [lo, hi]; *out keeps its default when absent. */
static int arg_uint(json_t *args, const char *key, unsigned lo, unsigned hi, unsigned *out,
		    struct ember_error **err)
{
	json_t *v = json_object_get(args, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return ember_error_set(err, KIND, 0, "argument `%s` must be a whole number from %u "
				       "to %u", key, lo, hi);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

static int arg_path(json_t *args, const char *key, bool required, char *out,
		    struct ember_error **err)
{
	const char *path;
	size_t len;

	if (arg_string(args, key, required, PROTO_PATH_MAX, &path, &len, err) < 0)
		return -1;
	if (path == NULL)
		return 0;
	if (len == 0)
		return ember_error_set(err, KIND, 0, "argument `%s` must not be empty", key);
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

/* The sandbox a call names, or (none named) the session's first run_code sandbox, made as a
 * python one when there is none yet. */
static int arg_sandbox(struct tool_call *call, char out[SANDBOX_ID_LEN + 1],
		       struct ember_error **err)
{
	struct mcp_code_slot slot;
	const char *id;
	bool have = false;

	if (arg_string(call->args, "sandbox_id", false, SANDBOX_ID_LEN + 8, &id, NULL, err) < 0)
		return -1;
	if (id != NULL) {
		if (!api_valid_sandbox_id(id))
			return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.40s`", id);
		snprintf(out, SANDBOX_ID_LEN + 1, "%s", id);
		return 0;
	}
	pthread_mutex_lock(&call->ws->lock);
	if (call->ws->nslots > 0) {
		snprintf(out, SANDBOX_ID_LEN + 1, "%s", call->ws->slots[0].sandbox_id);
		have = true;
	}
	pthread_mutex_unlock(&call->ws->lock);
	if (have && sandbox_exists(call->m, out))
		return 0;
	if (have) /* it timed out or was deleted elsewhere: a new default is made */
		disown(call->ws, out);
	if (code_slot(call, "python", &slot, err) < 0)
		return -1;
	snprintf(out, SANDBOX_ID_LEN + 1, "%s", slot.sandbox_id);
	return 0;
}

/* --- output --- */

/* Guest bytes as a JSON string a model can read: invalid UTF-8 becomes U+FFFD. */
static json_t *text_value(const uint8_t *data, size_t len)
{
	struct buf b = { 0 };
	json_t *s;
	size_t i;

	if (utf8_valid_text(data, len))
		return json_stringn((const char *)data, len);
	for (i = 0; i < len; i++) {
		size_t n = 1;

		/* Longest valid sequence here (1..4 bytes), else one replaced byte. */
		while (n <= 4 && i + n <= len && !utf8_valid_text(data + i, n))
			n++;
		if (n <= 4 && i + n <= len && data[i] != 0) {
			if (buf_append(&b, data + i, n) < 0)
				goto oom;
			i += n - 1;
		} else if (buf_append(&b, "\xef\xbf\xbd", 3) < 0) {
			goto oom;
		}
	}
	s = json_stringn(b.data != NULL ? (const char *)b.data : "", b.len);
	buf_release(&b);
	return s;
oom:
	buf_release(&b);
	return NULL;
}

/* A guest's C string (NULL: "") as a JSON string, whatever its bytes. */
static json_t *guest_text(const char *s)
{
	return text_value((const uint8_t *)(s != NULL ? s : ""), s != NULL ? strlen(s) : 0);
}

static int text_printf(struct tool_call *call, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int text_printf(struct tool_call *call, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	return buf_append(&call->text, small, strlen(small));
}

/* One output stream into out[key] and the text: at most MCP_OUTPUT_MAX bytes of it (the tail
 * when tail, else the head), truncation said in both. */
static int add_stream(struct tool_call *call, const char *key, const uint8_t *data, size_t len,
		      bool truncated, bool tail)
{
	char flag[48];
	json_t *v;

	if (len > MCP_OUTPUT_MAX) {
		if (tail)
			data += len - MCP_OUTPUT_MAX;
		len = MCP_OUTPUT_MAX;
		truncated = true;
	}
	v = text_value(data, len);
	snprintf(flag, sizeof(flag), "%s_truncated", key);
	if (v == NULL || json_object_set_new(call->out, key, v) < 0 ||
	    json_object_set_new(call->out, flag, json_boolean(truncated)) < 0)
		return -1;
	if (len > 0 || truncated) {
		if (text_printf(call, "[%s]\n", key) < 0 ||
		    buf_append(&call->text, json_string_value(v), strlen(json_string_value(v))) < 0)
			return -1;
		if (len > 0 && data[len - 1] != '\n' && buf_append(&call->text, "\n", 1) < 0)
			return -1;
		if (truncated &&
		    text_printf(call, "[%s truncated: only %s %u bytes are shown]\n", key,
				tail ? "the last" : "the first", MCP_OUTPUT_MAX) < 0)
			return -1;
	}
	return 0;
}

/* A labelled piece of guest text for the model, at most MCP_OUTPUT_MAX bytes of it (the cut
 * said); the structured output keeps it whole. */
static int add_text(struct tool_call *call, const char *label, const char *text)
{
	size_t len = text != NULL ? strlen(text) : 0;
	bool cut = len > MCP_OUTPUT_MAX;
	json_t *v;
	int ret;

	if (len == 0)
		return 0;
	v = text_value((const uint8_t *)text, cut ? MCP_OUTPUT_MAX : len);
	if (v == NULL)
		return -1;
	ret = text_printf(call, "[%s]\n", label) < 0 ||
	      buf_append(&call->text, json_string_value(v), strlen(json_string_value(v))) < 0 ||
	      text_printf(call, "\n%s", cut ? "[truncated: the first 65536 bytes are shown]\n" : "")
		      < 0 ? -1 : 0;
	json_decref(v);
	return ret;
}

/* An exec's outcome: exit status, output, and (in a context) its value and exception. */
static int add_exec_result(struct tool_call *call, const struct channel_exec_result *res,
			   struct ember_error **err)
{
	const struct proto_exit *e = &res->exit;
	const struct proto_outcome *o = &e->context;
	json_t *error = json_null();

	if (json_object_set_new(call->out, "exit_code", json_integer(e->exit_code)) < 0 ||
	    json_object_set_new(call->out, "timed_out", json_boolean(e->timed_out)) < 0 ||
	    json_object_set_new(call->out, "duration_ms",
				json_integer((json_int_t)e->duration_ms)) < 0 ||
	    add_stream(call, "stdout", res->stdout_data, res->stdout_len, e->stdout_truncated,
		       false) < 0 ||
	    add_stream(call, "stderr", res->stderr_data, res->stderr_len, e->stderr_truncated,
		       false) < 0)
		return ember_error_oom(err);
	if (!o->present)
		return 0;
	if (o->has_error)
		error = json_pack("{s:o, s:o, s:o}", "name", guest_text(o->error_name), "value",
				  guest_text(o->error_value), "traceback",
				  guest_text(o->error_traceback));
	if (error == NULL || json_object_set_new(call->out, "error", error) < 0 ||
	    json_object_set_new(call->out, "result",
				o->result != NULL ? text_value((const uint8_t *)o->result,
							       strlen(o->result))
						  : json_null()) < 0)
		return ember_error_oom(err);
	if ((o->result != NULL && add_text(call, "result", o->result) < 0) ||
	    (o->has_error && add_text(call, "error", o->error_traceback != NULL &&
					  o->error_traceback[0] != '\0' ? o->error_traceback
									 : o->error_value) < 0))
		return ember_error_oom(err);
	if (o->has_error && text_printf(call, "%.200s: %.400s\n", o->error_name ? o->error_name : "",
					o->error_value ? o->error_value : "") < 0)
		return ember_error_oom(err);
	if (e->timed_out && text_printf(call, "[timed out]\n") < 0)
		return ember_error_oom(err);
	return 0;
}

/* --- tools --- */

/* Waits for, and takes (take) or gives back (!take), the turn of language's run_code in the
 * session: its one context runs one piece of code at a time. */
static void run_turn(struct mcp_workspace *ws, enum proto_context_language language, bool take)
{
	unsigned bit = 1u << (unsigned)language;

	pthread_mutex_lock(&ws->lock);
	if (take) {
		while (ws->running & bit)
			pthread_cond_wait(&ws->changed, &ws->lock);
		ws->running |= bit;
	} else {
		ws->running &= ~bit;
		pthread_cond_broadcast(&ws->changed);
	}
	pthread_mutex_unlock(&ws->lock);
}

static int tool_run_code(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "language", "code", "timeout_s", NULL };
	struct channel_exec_result res = { 0 };
	struct sandbox_exec_request req = { .has_max_output = true,
					    .max_output_bytes = MCP_OUTPUT_MAX };
	struct mcp_code_slot slot;
	const char *language = "python";
	unsigned timeout_s = 0;
	int attempt, ret = -1;

	if (check_keys(call->args, keys, err) < 0 ||
	    arg_string(call->args, "language", false, 16, &language, NULL, err) < 0 ||
	    arg_string(call->args, "code", true, 1u << 20, &req.code, &req.code_len, err) < 0 ||
	    arg_uint(call->args, "timeout_s", 1, 3600, &timeout_s, err) < 0)
		return -1;
	if (language == NULL)
		language = "python";
	if (proto_context_language_parse(language) == PROTO_LANG_NONE)
		return ember_error_set(err, KIND, 0, "`language` must be python, node or shell");
	req.timeout_ms = timeout_s * 1000u;
	/* Parallel tool calls of one language take turns: their context runs one at a time. */
	run_turn(call->ws, proto_context_language_parse(language), true);
	/* A session sandbox deleted under us (sandbox_delete, its own timeout) is made again,
	 * once: the variables are lost, which the text says. */
	for (attempt = 0; attempt < 2; attempt++) {
		if (code_slot(call, language, &slot, err) < 0) {
			ret = -1;
			break;
		}
		req.context_id = slot.context_id;
		ret = manager_exec(call->m, slot.sandbox_id, &req, &res, err);
		if (ret == 0 || (*err)->kind != EMBER_E_NOT_FOUND || attempt > 0)
			break;
		/* The sandbox, or only its context (deleted through the REST API): either way it
		 * is replaced, and a sandbox still there is deleted rather than left unowned. */
		ember_error_free(err);
		manager_destroy(call->m, slot.sandbox_id, err);
		ember_error_free(err);
		disown(call->ws, slot.sandbox_id);
		if (text_printf(call, "[the session's %s sandbox or its interpreter was gone: a new "
				"one was made, earlier variables are lost]\n", language) < 0) {
			ret = ember_error_oom(err);
			break;
		}
	}
	run_turn(call->ws, proto_context_language_parse(language), false);
	if (ret < 0)
		return -1;
	if (json_object_set_new(call->out, "language", json_string(language)) < 0 ||
	    json_object_set_new(call->out, "sandbox_id", json_string(slot.sandbox_id)) < 0 ||
	    json_object_set_new(call->out, "context_id", json_string(slot.context_id)) < 0)
		ret = ember_error_oom(err);
	if (ret == 0)
		ret = add_exec_result(call, &res, err);
	channel_exec_result_release(&res);
	return ret;
}

static int tool_exec(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", "code", "stdin", "timeout_s", NULL };
	struct channel_exec_result res = { 0 };
	struct sandbox_exec_request req = { .has_max_output = true,
					    .max_output_bytes = MCP_OUTPUT_MAX };
	char id[SANDBOX_ID_LEN + 1];
	const char *stdin_text;
	unsigned timeout_s = 0;
	int ret;

	if (check_keys(call->args, keys, err) < 0 ||
	    arg_string(call->args, "code", true, 1u << 20, &req.code, &req.code_len, err) < 0 ||
	    arg_string(call->args, "stdin", false, 1u << 20, &stdin_text, &req.stdin_len, err) < 0 ||
	    arg_uint(call->args, "timeout_s", 1, 3600, &timeout_s, err) < 0 ||
	    arg_sandbox(call, id, err) < 0)
		return -1;
	req.has_stdin = stdin_text != NULL;
	req.stdin_data = (const uint8_t *)stdin_text;
	req.timeout_ms = timeout_s * 1000u;
	if (manager_exec(call->m, id, &req, &res, err) < 0)
		return -1;
	ret = json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0
		      ? ember_error_oom(err) : add_exec_result(call, &res, err);
	channel_exec_result_release(&res);
	return ret;
}

static json_t *sandbox_view(const struct sandbox_info *info, bool owned)
{
	return json_pack("{s:s, s:s, s:s, s:b}", "sandbox_id", info->id, "pack",
			 info->language_pack, "state", sandbox_state_name(info->state),
			 "owned_by_session", owned);
}

static int tool_sandbox_create(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "pack", "timeout_s", NULL };
	struct sandbox_info info;
	const char *pack;
	unsigned timeout_s = 0;
	json_t *view;

	if (check_keys(call->args, keys, err) < 0 ||
	    arg_string(call->args, "pack", false, CATALOG_NAME_MAX, &pack, NULL, err) < 0 ||
	    arg_uint(call->args, "timeout_s", 1, 30u * 24 * 3600, &timeout_s, err) < 0 ||
	    create_sandbox(call, pack, timeout_s, &info, err) < 0)
		return -1;
	view = sandbox_view(&info, true);
	if (view == NULL || json_object_update(call->out, view) < 0) {
		json_decref(view);
		return ember_error_oom(err);
	}
	json_decref(view);
	return 0;
}

static bool owned_by(struct mcp_workspace *ws, const char *id)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&ws->lock);
	for (i = 0; i < ws->nowned && !found; i++)
		found = strcmp(ws->owned[i], id) == 0;
	pthread_mutex_unlock(&ws->lock);
	return found;
}

static int tool_sandbox_list(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { NULL };
	_cleanup_free_ struct sandbox_info *infos = NULL;
	size_t count = 0, i;
	json_t *arr;

	if (check_keys(call->args, keys, err) < 0 ||
	    manager_list(call->m, &infos, &count, err) < 0)
		return -1;
	arr = json_array();
	if (arr == NULL || json_object_set_new(call->out, "sandboxes", arr) < 0)
		return ember_error_oom(err);
	for (i = 0; i < count; i++) {
		if (json_array_append_new(arr, sandbox_view(&infos[i],
							    owned_by(call->ws, infos[i].id))) < 0)
			return ember_error_oom(err);
	}
	return 0;
}

static int tool_sandbox_delete(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", NULL };
	const char *id;

	if (check_keys(call->args, keys, err) < 0 ||
	    arg_string(call->args, "sandbox_id", true, SANDBOX_ID_LEN + 8, &id, NULL, err) < 0)
		return -1;
	if (!api_valid_sandbox_id(id))
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no sandbox `%.40s`", id);
	if (manager_destroy(call->m, id, err) < 0) {
		if ((*err)->kind == EMBER_E_NOT_FOUND) /* gone already: no longer the session's */
			disown(call->ws, id);
		return -1;
	}
	disown(call->ws, id);
	if (json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0 ||
	    json_object_set_new(call->out, "deleted", json_true()) < 0)
		return ember_error_oom(err);
	return 0;
}

static int tool_read_file(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", "path", NULL };
	_cleanup_free_ uint8_t *data = malloc(MCP_OUTPUT_MAX);
	_cleanup_free_ char *path = malloc(PROTO_PATH_MAX + 1);
	struct manager_transfer *t = NULL;
	char id[SANDBOX_ID_LEN + 1];
	struct proto_fs_entry entry;
	size_t len = 0;
	ssize_t n = 1;
	bool truncated;
	int ret = -1;

	if (data == NULL || path == NULL)
		return ember_error_oom(err);
	if (check_keys(call->args, keys, err) < 0 || arg_path(call->args, "path", true, path, err) < 0 ||
	    arg_sandbox(call, id, err) < 0 ||
	    manager_download_open(call->m, id, path, &t, &entry, err) < 0)
		return -1;
	while (len < MCP_OUTPUT_MAX && n > 0) {
		n = manager_download_read(t, data + len, MCP_OUTPUT_MAX - len, err);
		if (n < 0)
			goto out;
		len += (size_t)n;
	}
	truncated = entry.size > len;
	if (truncated)
		len = utf8_trim_cut(data, len);
	if (json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0 ||
	    json_object_set_new(call->out, "path", json_string(path)) < 0 ||
	    json_object_set_new(call->out, "size", json_integer((json_int_t)entry.size)) < 0 ||
	    json_set_bytes(call->out, "content", data, len, err) < 0 ||
	    json_object_set_new(call->out, "truncated", json_boolean(truncated)) < 0) {
		ember_error_oom(err);
		goto out;
	}
	/* The text is the file (a binary one in base64), then the truncation, if any. */
	if (buf_append(&call->text, json_string_value(json_object_get(call->out, "content")),
		       strlen(json_string_value(json_object_get(call->out, "content")))) < 0 ||
	    (truncated && text_printf(call, "\n[truncated: the first %zu of %llu bytes are shown]",
				      len, (unsigned long long)entry.size) < 0)) {
		ember_error_oom(err);
		goto out;
	}
	if (len == 0 && text_printf(call, "(empty file)") < 0) {
		ember_error_oom(err);
		goto out;
	}
	ret = 0;
out:
	manager_transfer_close(t);
	return ret;
}

static int tool_write_file(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", "path", "content", NULL };
	_cleanup_free_ struct proto_fs_request *req = calloc(1, sizeof(*req));
	struct manager_transfer *t = NULL;
	struct proto_fs_reply reply;
	char id[SANDBOX_ID_LEN + 1];
	const char *content;
	size_t len;
	int ret = -1;

	if (req == NULL)
		return ember_error_oom(err);
	if (check_keys(call->args, keys, err) < 0 ||
	    arg_path(call->args, "path", true, req->path, err) < 0 ||
	    arg_string(call->args, "content", true, 64u << 20, &content, &len, err) < 0 ||
	    arg_sandbox(call, id, err) < 0)
		return -1;
	req->op = PROTO_FS_WRITE;
	req->parents = true;
	if (manager_upload_open(call->m, id, req, &t, err) < 0)
		return -1;
	if ((len > 0 && manager_upload_write(t, content, len, err) < 0) ||
	    manager_upload_finish(t, &reply, err) < 0)
		goto out;
	if (json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0 ||
	    json_object_set_new(call->out, "path", json_string(reply.path)) < 0 ||
	    json_object_set_new(call->out, "size", json_integer((json_int_t)reply.size)) < 0 ||
	    json_object_set_new(call->out, "sha256", json_string(reply.sha256)) < 0 ||
	    text_printf(call, "wrote %llu bytes to %.400s", (unsigned long long)reply.size,
			reply.path) < 0)
		ember_error_oom(err);
	else
		ret = 0;
	proto_fs_reply_release(&reply);
out:
	manager_transfer_close(t);
	return ret;
}

static int tool_list_files(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", "path", NULL };
	_cleanup_free_ struct proto_fs_request *req = calloc(1, sizeof(*req));
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_NONE };
	char id[SANDBOX_ID_LEN + 1];
	json_t *arr;
	size_t i;
	int ret = -1;

	if (req == NULL)
		return ember_error_oom(err);
	strcpy(req->path, ".");
	if (check_keys(call->args, keys, err) < 0 ||
	    arg_path(call->args, "path", false, req->path, err) < 0 ||
	    arg_sandbox(call, id, err) < 0)
		return -1;
	req->op = PROTO_FS_LIST;
	if (manager_fs(call->m, id, req, &reply, err) < 0)
		return -1;
	arr = json_array();
	if (arr == NULL || json_object_set_new(call->out, "entries", arr) < 0)
		goto oom;
	for (i = 0; i < reply.count; i++) {
		const struct proto_fs_entry *e = &reply.entries[i];

		if (json_array_append_new(arr, json_pack("{s:o, s:s, s:I}", "name",
							 guest_text(e->name), "type",
							 proto_fs_type_name(e->type), "size",
							 (json_int_t)e->size)) < 0 ||
		    text_printf(call, "%s%s\t%llu\n", e->name,
				e->type == PROTO_FS_TYPE_DIR ? "/" : "",
				(unsigned long long)e->size) < 0)
			goto oom;
	}
	if (json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0 ||
	    json_object_set_new(call->out, "path", json_string(req->path)) < 0 ||
	    json_object_set_new(call->out, "truncated", json_boolean(reply.truncated)) < 0 ||
	    (reply.truncated && text_printf(call, "[truncated: more entries than listed]\n") < 0) ||
	    (reply.count == 0 && text_printf(call, "(empty directory)\n") < 0))
		goto oom;
	ret = 0;
	goto out;
oom:
	ember_error_oom(err);
out:
	proto_fs_reply_release(&reply);
	return ret;
}

static int tool_start_process(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", "code", "command", "tag", NULL };
	struct sandbox_process_request req = { 0 };
	char *argv[PROTO_ARGV_MAX + 1] = { NULL };
	json_t *command = json_object_get(call->args, "command"), *v;
	char id[SANDBOX_ID_LEN + 1];
	struct procs_info info;
	size_t i;

	if (check_keys(call->args, keys, err) < 0 ||
	    arg_string(call->args, "code", false, 1u << 20, &req.code, &req.code_len, err) < 0 ||
	    arg_string(call->args, "tag", false, API_TAG_MAX, &req.tag, NULL, err) < 0)
		return -1;
	if ((req.code != NULL) == (command != NULL))
		return ember_error_set(err, KIND, 0, "give exactly one of `code` and `command`");
	if (command != NULL) {
		if (!json_is_array(command) || json_array_size(command) == 0 ||
		    json_array_size(command) > PROTO_ARGV_MAX)
			return ember_error_set(err, KIND, 0, "`command` must be a non-empty array of "
					       "at most %u strings", PROTO_ARGV_MAX);
		json_array_foreach(command, i, v) {
			if (!json_is_string(v))
				return ember_error_set(err, KIND, 0,
						       "`command` must hold strings only");
			argv[i] = (char *)json_string_value(v);
		}
		req.argv = argv;
		req.argc = json_array_size(command);
	}
	if (arg_sandbox(call, id, err) < 0 ||
	    manager_process_start(call->m, id, &req, &info, err) < 0)
		return -1;
	if (json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0 ||
	    json_object_set_new(call->out, "pid", json_integer(info.pid)) < 0 ||
	    json_object_set_new(call->out, "state", json_string("running")) < 0 ||
	    text_printf(call, "started pid %d in %s (read its output with process_output)",
			(int)info.pid, id) < 0)
		return ember_error_oom(err);
	return 0;
}

static int tool_process_output(struct tool_call *call, struct ember_error **err)
{
	static const char *const keys[] = { "sandbox_id", "pid", NULL };
	uint8_t *out[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 };
	char id[SANDBOX_ID_LEN + 1];
	struct procs *procs = NULL;
	struct procs_info info;
	unsigned pid = 0;
	bool exited;
	int ret = -1;

	if (check_keys(call->args, keys, err) < 0 ||
	    arg_uint(call->args, "pid", 1, 0x7fffffff, &pid, err) < 0)
		return -1;
	if (pid == 0)
		return ember_error_set(err, KIND, 0, "argument `pid` is required");
	if (arg_sandbox(call, id, err) < 0 || manager_procs(call->m, id, &procs, err) < 0 ||
	    procs_get(procs, (int32_t)pid, &info, out, len, err) < 0)
		goto out;
	exited = info.state == PROCS_EXITED;
	if (json_object_set_new(call->out, "sandbox_id", json_string(id)) < 0 ||
	    json_object_set_new(call->out, "pid", json_integer(info.pid)) < 0 ||
	    json_object_set_new(call->out, "state", json_string(exited ? "exited" : "running")) < 0 ||
	    json_object_set_new(call->out, "exit_code", exited && !info.lost
				? json_integer(info.exit.exit_code) : json_null()) < 0 ||
	    text_printf(call, "pid %d: %s", (int)info.pid, exited ? "exited" : "running") < 0 ||
	    (exited && !info.lost && text_printf(call, " with code %d", info.exit.exit_code) < 0) ||
	    text_printf(call, "\n") < 0 ||
	    add_stream(call, "stdout", out[0], len[0], info.dropped[0] > 0, true) < 0 ||
	    add_stream(call, "stderr", out[1], len[1], info.dropped[1] > 0, true) < 0) {
		ember_error_oom(err);
		goto out;
	}
	ret = 0;
out:
	free(out[0]);
	free(out[1]);
	procs_unref(procs);
	return ret;
}

/* --- the table --- */

#define OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "}" req "}"
#define SANDBOX_ARG \
	"\"sandbox_id\":{\"type\":\"string\",\"description\":\"a sandbox id (sb_...); omitted: " \
	"the session's sandbox (run_code's, made on first use)\"}"
#define STR "{\"type\":\"string\"}"
#define BOOL "{\"type\":\"boolean\"}"
#define INT "{\"type\":\"integer\"}"
#define STREAMS "\"stdout\":" STR ",\"stdout_truncated\":" BOOL ",\"stderr\":" STR \
		",\"stderr_truncated\":" BOOL
#define EXEC_OUT "\"sandbox_id\":" STR ",\"exit_code\":" INT ",\"timed_out\":" BOOL \
		 ",\"duration_ms\":" INT "," STREAMS
#define SANDBOX_OUT "{\"type\":\"object\",\"properties\":{\"sandbox_id\":" STR ",\"pack\":" STR \
		    ",\"state\":" STR ",\"owned_by_session\":" BOOL "},\"required\":" \
		    "[\"sandbox_id\",\"pack\",\"state\",\"owned_by_session\"]}"

static const struct tool tools[] = {
	{ "run_code", "Run code",
	  "Runs code in a persistent interpreter (python, node or shell) in this session's sandbox "
	  "for that language, made on first use: variables, imports and the working directory "
	  "persist across calls within the MCP session. Returns stdout, stderr, the value of the "
	  "last expression (python) and any exception. The sandbox is deleted when the session "
	  "ends.",
	  OBJ("\"language\":{\"type\":\"string\",\"enum\":[\"python\",\"node\",\"shell\"],"
	      "\"default\":\"python\"},\"code\":{\"type\":\"string\",\"description\":\"the code "
	      "to run\"},\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600}",
	      ",\"required\":[\"code\"],\"additionalProperties\":false"),
	  OBJ("\"language\":" STR ",\"context_id\":" STR "," EXEC_OUT
	      ",\"result\":{\"type\":[\"string\",\"null\"]},\"error\":{\"type\":[\"object\","
	      "\"null\"],\"properties\":{\"name\":" STR ",\"value\":" STR ",\"traceback\":" STR
	      "}}",
	      ",\"required\":[\"language\",\"sandbox_id\",\"exit_code\",\"stdout\",\"stderr\"]"),
	  tool_run_code },
	{ "exec", "Run a program",
	  "Runs code once with the sandbox pack's interpreter (a fresh process: no state is "
	  "kept; use run_code for that). Returns the exit code and output.",
	  OBJ(SANDBOX_ARG ",\"code\":" STR ",\"stdin\":" STR
	      ",\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600}",
	      ",\"required\":[\"code\"],\"additionalProperties\":false"),
	  OBJ(EXEC_OUT, ",\"required\":[\"sandbox_id\",\"exit_code\",\"stdout\",\"stderr\"]"),
	  tool_exec },
	{ "sandbox_create", "Create a sandbox",
	  "Boots a new sandbox (a microVM) of a language pack. It belongs to this MCP session and "
	  "is deleted when the session ends.",
	  OBJ("\"pack\":{\"type\":\"string\",\"description\":\"a language pack (GET /packs); "
	      "default python\"},\"timeout_s\":{\"type\":\"integer\",\"minimum\":1}",
	      ",\"additionalProperties\":false"),
	  SANDBOX_OUT, tool_sandbox_create },
	{ "sandbox_list", "List sandboxes", "Lists the daemon's sandboxes.",
	  OBJ("", ",\"additionalProperties\":false"),
	  OBJ("\"sandboxes\":{\"type\":\"array\",\"items\":" SANDBOX_OUT "}",
	      ",\"required\":[\"sandboxes\"]"),
	  tool_sandbox_list },
	{ "sandbox_delete", "Delete a sandbox", "Deletes a sandbox and its VM.",
	  OBJ("\"sandbox_id\":" STR, ",\"required\":[\"sandbox_id\"],\"additionalProperties\":false"),
	  OBJ("\"sandbox_id\":" STR ",\"deleted\":" BOOL, ",\"required\":[\"sandbox_id\"]"),
	  tool_sandbox_delete },
	{ "read_file", "Read a file",
	  "Reads a file of a sandbox (relative paths are under the sandbox user's home). Text "
	  "comes back as is, other bytes in base64; at most 64 KiB (the result says when it cut).",
	  OBJ(SANDBOX_ARG ",\"path\":" STR,
	      ",\"required\":[\"path\"],\"additionalProperties\":false"),
	  OBJ("\"sandbox_id\":" STR ",\"path\":" STR ",\"size\":" INT ",\"content\":" STR
	      ",\"content_encoding\":{\"type\":\"string\",\"enum\":[\"utf-8\",\"base64\"]},"
	      "\"truncated\":" BOOL,
	      ",\"required\":[\"path\",\"content\",\"content_encoding\",\"truncated\"]"),
	  tool_read_file },
	{ "write_file", "Write a file",
	  "Writes text to a file of a sandbox (replacing it; missing directories are made).",
	  OBJ(SANDBOX_ARG ",\"path\":" STR ",\"content\":" STR,
	      ",\"required\":[\"path\",\"content\"],\"additionalProperties\":false"),
	  OBJ("\"sandbox_id\":" STR ",\"path\":" STR ",\"size\":" INT ",\"sha256\":" STR,
	      ",\"required\":[\"path\",\"size\"]"),
	  tool_write_file },
	{ "list_files", "List a directory",
	  "Lists a directory of a sandbox (default: the sandbox user's home).",
	  OBJ(SANDBOX_ARG ",\"path\":" STR, ",\"additionalProperties\":false"),
	  OBJ("\"sandbox_id\":" STR ",\"path\":" STR ",\"entries\":{\"type\":\"array\",\"items\":"
	      "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"type\":" STR ",\"size\":"
	      INT "}}},\"truncated\":" BOOL,
	      ",\"required\":[\"entries\",\"truncated\"]"),
	  tool_list_files },
	{ "start_process", "Start a background process",
	  "Starts a background process in a sandbox: code for the pack's interpreter, or a "
	  "command (argv). Returns its pid; read its output with process_output.",
	  OBJ(SANDBOX_ARG ",\"code\":" STR ",\"command\":{\"type\":\"array\",\"items\":" STR
	      ",\"minItems\":1},\"tag\":" STR,
	      ",\"additionalProperties\":false"),
	  OBJ("\"sandbox_id\":" STR ",\"pid\":" INT ",\"state\":" STR,
	      ",\"required\":[\"sandbox_id\",\"pid\",\"state\"]"),
	  tool_start_process },
	{ "process_output", "Read a background process",
	  "A background process's state, exit code and the output it holds (the last 64 KiB of "
	  "each stream).",
	  OBJ(SANDBOX_ARG ",\"pid\":{\"type\":\"integer\",\"minimum\":1}",
	      ",\"required\":[\"pid\"],\"additionalProperties\":false"),
	  OBJ("\"sandbox_id\":" STR ",\"pid\":" INT ",\"state\":{\"type\":\"string\",\"enum\":"
	      "[\"running\",\"exited\"]},\"exit_code\":{\"type\":[\"integer\",\"null\"]},"
	      STREAMS, ",\"required\":[\"pid\",\"state\",\"stdout\",\"stderr\"]"),
	  tool_process_output },
};

static const struct tool *find_tool(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tools); i++) {
		if (strcmp(tools[i].name, name) == 0)
			return &tools[i];
	}
	return NULL;
}

bool mcp_tool_exists(const char *name)
{
	return find_tool(name) != NULL;
}

json_t *mcp_tools_list(void)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < ARRAY_SIZE(tools); i++) {
		json_t *in = json_loads(tools[i].input_schema, 0, NULL);
		json_t *out = json_loads(tools[i].output_schema, 0, NULL);

		/* The schemas are literals: one that does not parse is a bug a test catches. */
		if (in == NULL || out == NULL ||
		    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:o}", "name",
							 tools[i].name, "title", tools[i].title,
							 "description", tools[i].description,
							 "inputSchema", in, "outputSchema",
							 out)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *error_result(const struct ember_error *err)
{
	char text[700];

	snprintf(text, sizeof(text), "error (%s): %s",
		 ember_error_kind_name(err != NULL ? err->kind : EMBER_E_INTERNAL),
		 err != NULL ? err->message : "out of memory");
	return json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text",
			 text_value((const uint8_t *)text, strlen(text)), "isError", 1);
}

json_t *mcp_tools_call(struct manager *m, struct mcp_workspace *ws, const char *name,
		       json_t *arguments)
{
	const struct tool *tool = find_tool(name);
	struct tool_call call = { .m = m, .ws = ws };
	struct ember_error *err = NULL;
	json_t *result = NULL, *text;
	char *dump;

	call.args = arguments != NULL ? json_incref(arguments) : json_object();
	call.out = json_object();
	if (tool == NULL || call.args == NULL || call.out == NULL) {
		ember_error_set(&err, EMBER_E_INTERNAL, 0, "out of memory");
		goto fail;
	}
	if (!json_is_object(call.args)) {
		ember_error_set(&err, KIND, 0, "`arguments` must be an object");
		goto fail;
	}
	if (tool->handler(&call, &err) < 0)
		goto fail;
	if (call.text.len > 0) {
		text = text_value(call.text.data, call.text.len);
	} else {
		dump = json_dumps(call.out, JSON_COMPACT);
		text = dump != NULL ? json_string(dump) : NULL;
		free(dump);
	}
	result = json_pack("{s:[{s:s, s:o*}], s:O, s:b}", "content", "type", "text", "text", text,
			   "structuredContent", call.out, "isError", 0);
	goto out;
fail:
	result = error_result(err);
	ember_error_free(&err);
out:
	json_decref(call.args);
	json_decref(call.out);
	buf_release(&call.text);
	return result;
}
