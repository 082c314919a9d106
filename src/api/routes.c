/* routes.c - API v1: the route table and one small handler per row. See docs/api.md for the
 * contract. Matching walks the table once per request: O(rows), fifteen of them. */
#include "api/routes.h"
#include "sandbox/snapshots.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/encode.h"
#include "api/fsrequests.h"
#include "api/mcp.h"
#include "api/requests.h"
#include "api/scrape.h"
#include "sandbox/headroom.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

/* What GET /console returns (docs/api.md): the end of the console, enough for a boot's worth of
 * emberd-init lines or a panic with its backtrace, small enough for any client. */
#define CONSOLE_TAIL_BYTES (16 * 1024)

#define _cleanup_exec_result_ __attribute__((cleanup(channel_exec_result_release)))

/* What a handler gets: the request, with the `{id}` segment already checked for shape. */
struct api_request {
	const char *method;
	const char *id;       /* NULL when the pattern has no {id} */
	const char *pid;      /* the {pid} segment, unchecked; NULL when the pattern has none */
	const char *body;
	size_t body_len;
	const struct api_query *query; /* never NULL (an empty one when there was none) */
};

typedef void api_handler(struct api_context *ctx, const struct api_request *req,
			 struct api_response *resp);

struct route {
	const char *method;
	const char *pattern;  /* segments; "{id}" matches any one segment, a sandbox id */
	api_handler *handler;
};

/* The {id} segment of a path, as the matcher saw it; pid holds the {pid} or {context_id}
 * segment (one pattern has at most one of them). */
struct path_id {
	bool present;
	bool too_long;
	char text[SANDBOX_ID_LEN + 1];
	bool has_pid;
	char pid[48];         /* "" when the segment was longer: no valid pid or context id is */
};

enum match {
	MATCH_NONE,      /* not this pattern */
	MATCH_UNDER_ID,  /* got past the pattern's {id}, then differs: that id's unknown route */
	MATCH_FULL,
};

unsigned api_status_for(enum ember_error_kind kind)
{
	switch (kind) {
	case EMBER_E_INVALID: return 400;
	case EMBER_E_NOT_FOUND: return 404;
	case EMBER_E_METHOD: return 405;
	case EMBER_E_CONFLICT: return 409;
	case EMBER_E_TOO_LARGE: return 413;
	case EMBER_E_CAPACITY: return 429;
	case EMBER_E_UNAVAILABLE: return 503;
	case EMBER_E_GUEST: return 502;
	case EMBER_E_PROTOCOL: return 502;
	case EMBER_E_GUEST_TIMEOUT: return 504;
	case EMBER_E_UNAUTHORIZED: return 401;
	case EMBER_E_FORBIDDEN: return 403;
	case EMBER_E_MISDIRECTED: return 421;
	case EMBER_E_NO_SPACE: return 507;
	case EMBER_E_INTERNAL: break;
	}
	return 500;
}

void api_response_error(struct api_response *resp, const struct ember_error *err)
{
	enum ember_error_kind kind = err != NULL ? err->kind : EMBER_E_INTERNAL;

	resp->status = api_status_for(kind);
	/* A limit that is reached now may not be in a second: every 429 says when to look again. */
	resp->retry_after_s = err != NULL ? err->retry_after_s : 0;
	if (resp->status == 429 && resp->retry_after_s == 0)
		resp->retry_after_s = 1;
	resp->body = api_encode_error(ember_error_kind_name(kind),
				      err != NULL ? err->message : "out of memory");
}

/* Takes body; a NULL body (an encoder ran out of memory) becomes a 500. */
static void respond_json(struct api_response *resp, unsigned status, json_t *body)
{
	if (body == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	resp->status = status;
	resp->body = body;
}

static void respond_err(struct api_response *resp, struct ember_error **err)
{
	api_response_error(resp, *err);
	ember_error_free(err);
}

static void respond_not_found(struct api_response *resp, const char *what)
{
	resp->status = 404;
	resp->body = api_encode_error(ember_error_kind_name(EMBER_E_NOT_FOUND), what);
}

/* What holds and what is weaker on this host, in words (docs/security.md has the whole story). */
static json_t *isolation_note(struct vmm_driver *driver)
{
	bool tcg = strcmp(vmm_driver_accel_name(driver), "tcg") == 0;

	return json_pack("{s:s, s:s}", "guest",
			 "its own kernel in its own VM; a network device only when its network "
			 "policy asks for one (docs/network.md)",
			 "accelerator",
			 tcg ? "tcg: software emulation, which QEMU does not treat as a security "
			       "boundary; the VMM's jail carries more weight (docs/security.md)"
			     : "kvm: hardware virtualization");
}

/* Host memory against what sandboxes may take (sandbox/headroom.h); null fields when meminfo
 * could not be read. */
static json_t *memory_view(const struct manager_stats *st)
{
	json_t *o = json_pack("{s:i, s:s, s:I}", "max_sandboxes", (int)st->max_sandboxes,
			      "max_sandboxes_from", st->max_sandboxes_derived ? "memory" : "setting",
			      "rejections_total", (json_int_t)st->memory_rejections_total);
	if (o == NULL || !st->memory_known) {
		json_object_set_new(o, "available_mib", json_null());
		return o;
	}
	json_object_set_new(o, "total_mib", json_integer((json_int_t)st->memory_total_mib));
	json_object_set_new(o, "available_mib", json_integer((json_int_t)st->memory_available_mib));
	json_object_set_new(o, "reserve_mib", json_integer((json_int_t)st->memory_reserve_mib));
	json_object_set_new(o, "booting_mib", json_integer((json_int_t)st->memory_booting_mib));
	json_object_set_new(o, "sandbox_cost_mib", json_integer((json_int_t)st->sandbox_cost_mib));
	json_object_set_new(o, "headroom_sandboxes",
			    json_integer((json_int_t)st->headroom_sandboxes));
	return o;
}

static void handle_healthz(struct api_context *ctx, const struct api_request *req,
			   struct api_response *resp)
{
	struct manager_stats st;
	_cleanup_json_ json_t *body = NULL;
	json_t *by_pack, *pool;
	size_t i;

	(void)req;
	manager_stats(ctx->manager, &st);
	body = json_pack("{s:s, s:s, s:I, s:{s:s, s:s, s:s, s:s}, s:{s:i, s:i, s:i, s:i, s:i, "
			 "s:I, s:I, s:I}, s:s, s:{s:b, s:i, s:i, s:i}, s:{s:i, s:I}}",
			 "status", "ok", "version", EMBER_VERSION, "uptime_s",
			 (json_int_t)((time_mono_ms() - ctx->started_mono_ms) / 1000), "vmm",
			 "driver", vmm_driver_name(ctx->driver), "accel",
			 vmm_driver_accel_name(ctx->driver), "description",
			 vmm_driver_description(ctx->driver), "selected_because",
			 ctx->vmm_selection_reason != NULL ? ctx->vmm_selection_reason : "",
			 "sandboxes", "total", (int)st.total, "booting", (int)st.booting, "ready",
			 (int)st.ready, "failed", (int)st.failed, "destroying", (int)st.destroying,
			 "created_total", (json_int_t)st.created_total, "create_failures_total",
			 (json_int_t)st.create_failures_total, "execs_total",
			 (json_int_t)st.execs_total, "host_cgroups",
			 vmm_driver_cgroup_status(ctx->driver), "templates", "enabled",
			 st.snapshots, "ready", (int)st.templates_ready, "building",
			 (int)st.templates_building, "failed", (int)st.templates_failed, "pool",
			 "ready", (int)st.pool_ready, "handouts_total",
			 (json_int_t)st.pool_handouts_total);
	if (body != NULL) {
		json_object_set_new(body, "isolation", isolation_note(ctx->driver));
		json_object_set_new(json_object_get(body, "templates"), "evicted_total",
				    json_integer(st.templates_evicted_total));
		json_object_set_new(json_object_get(body, "pool"), "refills_deferred_total",
				    json_integer((json_int_t)st.pool_refills_deferred_total));
		json_object_set_new(json_object_get(body, "pool"), "shed_total",
				    json_integer((json_int_t)st.pool_shed_total));
		json_object_set_new(json_object_get(body, "pool"), "memory_low",
				    json_boolean(st.pool_memory_low));
		json_object_set_new(body, "memory", memory_view(&st));
	}
	if (body != NULL) {
		json_t *size_by_pack = json_object();

		pool = json_object_get(body, "pool");
		by_pack = json_object();
		for (i = 0; by_pack != NULL && size_by_pack != NULL &&
			    i < st.pool_catalog->count; i++) {
			const char *name = st.pool_catalog->packs[i].name;

			json_object_set_new(by_pack, name, json_integer(st.pool_ready_by_pack[i]));
			json_object_set_new(size_by_pack, name,
					    json_integer(pack_list_has(st.pool_packs, name) ?
							 st.pool_size : 0));
		}
		json_object_set_new(pool, "ready_by_pack", by_pack);
		json_object_set_new(pool, "size_by_pack", size_by_pack);
		json_object_set_new(pool, "size_per_pack", json_integer(st.pool_size));
	}
	respond_json(resp, 200, steal_pointer(&body));
}

/* GET /metrics: the Prometheus text exposition (api/scrape.h). */
static void handle_metrics(struct api_context *ctx, const struct api_request *req,
			   struct api_response *resp)
{
	struct ember_error *err = NULL;
	struct buf out = { 0 };

	(void)req;
	if (api_scrape(ctx, &out, &err) < 0 || buf_terminate(&out) < 0) {
		buf_release(&out);
		if (err == NULL)
			ember_error_oom(&err);
		respond_err(resp, &err);
		return;
	}
	resp->status = 200;
	resp->text_len = out.len;
	resp->text = (char *)steal_pointer(&out.data);
	resp->content_type = API_SCRAPE_CONTENT_TYPE;
}

/* The packs of the catalog in force (a generation stays valid after a reload replaced it). */
static json_t *packs_json(struct api_context *ctx)
{
	const struct catalog *catalog = manager_catalog(ctx->manager);
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < catalog->count; i++)
		json_array_append_new(arr, api_encode_pack(&catalog->packs[i]));
	return arr;
}

static void handle_packs(struct api_context *ctx, const struct api_request *req,
			 struct api_response *resp)
{
	json_t *arr = packs_json(ctx);

	(void)req;
	/* "o" takes arr, also when json_pack fails. */
	respond_json(resp, 200, arr != NULL ? json_pack("{s:o}", "packs", arr) : NULL);
}

/* POST /packs/reload: packs.json read again; what changed, and the packs now in force. */
static void handle_packs_reload(struct api_context *ctx, const struct api_request *req,
				struct api_response *resp)
{
	struct catalog_diff diff;
	struct ember_error *err = NULL;
	json_t *body;

	(void)req;
	if (manager_reload(ctx->manager, &diff, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	body = api_encode_catalog_diff(&diff);
	if (body != NULL)
		json_object_set_new(body, "packs", packs_json(ctx));
	respond_json(resp, 200, body);
}

/* The sandbox object: its info, and its network as the manager tells it now (a sandbox gone
 * since info was taken says mode none). */
static json_t *sandbox_json(struct api_context *ctx, const struct sandbox_info *info)
{
	struct ember_error *err = NULL;
	json_t *obj = api_encode_sandbox(info), *network;

	network = manager_network_json(ctx->manager, info->id, &err);
	if (network == NULL) {
		ember_error_free(&err);
		network = json_pack("{s:s}", "mode", "none");
	}
	if (obj == NULL || json_object_set_new(obj, "network", network) < 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* O(sandboxes x terms x labels): at most a few thousand string compares per listed sandbox,
 * cheaper than the JSON encoding of the ones that match. */
static void handle_list(struct api_context *ctx, const struct api_request *req,
			struct api_response *resp)
{
	_cleanup_free_ struct sandbox_info *infos = NULL;
	_cleanup_free_ struct api_list_filter *filter = malloc(sizeof(*filter));
	struct ember_error *err = NULL;
	size_t count = 0, i;
	json_t *arr;

	if (filter == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (api_parse_list_query(req->query, filter, &err) < 0 ||
	    manager_list(ctx->manager, &infos, &count, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	arr = json_array();
	for (i = 0; arr != NULL && i < count; i++) {
		if (api_list_filter_match(filter, &infos[i]))
			json_array_append_new(arr, sandbox_json(ctx, &infos[i]));
	}
	respond_json(resp, 200, arr != NULL ? json_pack("{s:o}", "sandboxes", arr) : NULL);
}

static void handle_create(struct api_context *ctx, const struct api_request *req,
			  struct api_response *resp)
{
	_cleanup_free_ struct api_create_body *parsed = malloc(sizeof(*parsed));
	struct sandbox_create_request create = { 0 };
	struct sandbox_info info;
	struct ember_error *err = NULL;
	int ret;

	if (parsed == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (api_parse_create(req->body, req->body_len, parsed, &err) < 0) {
		api_create_body_release(parsed);
		respond_err(resp, &err);
		return;
	}
	create.language_pack = parsed->language_pack[0] != '\0' ? parsed->language_pack : NULL;
	create.vcpus = parsed->vcpus;
	create.memory_mib = parsed->memory_mib;
	create.timeout_s = parsed->timeout_s;
	create.overlay_mib = parsed->overlay_mib;
	create.idle_timeout_s = parsed->idle_timeout_s;
	create.cpu_weight = parsed->cpu_weight;
	create.labels = &parsed->labels;
	create.network = &parsed->network;
	create.mounts = &parsed->mounts;
	create.from_snapshot = parsed->from_snapshot[0] != '\0' ? parsed->from_snapshot : NULL;
	ret = manager_create_sandbox(ctx->manager, &create, &info, &err);
	api_create_body_release(parsed);
	if (ret < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, sandbox_json(ctx, &info));
}

static void handle_get(struct api_context *ctx, const struct api_request *req,
		       struct api_response *resp)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;

	if (manager_get(ctx->manager, req->id, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, sandbox_json(ctx, &info));
}

static void handle_timeout(struct api_context *ctx, const struct api_request *req,
			   struct api_response *resp)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;
	unsigned timeout_s;

	if (api_parse_timeout(req->body, req->body_len, &timeout_s, &err) < 0 ||
	    manager_set_timeout(ctx->manager, req->id, timeout_s, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, sandbox_json(ctx, &info));
}

/* POST .../pause and .../resume: the sandbox as it is afterwards (docs/api.md "Pause and
 * resume"); a body, if any, is not read. */
static void handle_pause_or_resume(struct api_context *ctx, const struct api_request *req,
				   struct api_response *resp, bool pause)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;
	int ret = pause ? manager_pause(ctx->manager, req->id, &info, &err)
			: manager_resume(ctx->manager, req->id, &info, &err);

	if (ret < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, sandbox_json(ctx, &info));
}

static void handle_pause(struct api_context *ctx, const struct api_request *req,
			 struct api_response *resp)
{
	handle_pause_or_resume(ctx, req, resp, true);
}

static void handle_resume(struct api_context *ctx, const struct api_request *req,
			  struct api_response *resp)
{
	handle_pause_or_resume(ctx, req, resp, false);
}

/* POST /sandboxes/{id}/fork -> 201 {"sandboxes": [...]}. */
static void handle_fork(struct api_context *ctx, const struct api_request *req,
			struct api_response *resp)
{
	_cleanup_free_ struct api_fork_body *body = calloc(1, sizeof(*body));
	_cleanup_free_ struct sandbox_info *infos = NULL;
	struct ember_error *err = NULL;
	json_t *list;
	unsigned i;

	if (body == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (api_parse_fork(req->body, req->body_len, body, &err) < 0 ||
	    manager_fork(ctx->manager, req->id, body->count,
			 body->has_labels ? &body->labels : NULL, body->timeout_s, &infos,
			 &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	list = json_array();
	for (i = 0; list != NULL && i < body->count; i++)
		json_array_append_new(list, sandbox_json(ctx, &infos[i]));
	respond_json(resp, 201, json_pack("{s:o*}", "sandboxes", list));
}

/* POST /sandboxes/{id}/snapshots -> 201 the snapshot. */
static void handle_snapshot_create(struct api_context *ctx, const struct api_request *req,
				   struct api_response *resp)
{
	_cleanup_free_ struct sandbox_labels *labels = calloc(1, sizeof(*labels));
	_cleanup_free_ struct snapshot_info *info = calloc(1, sizeof(*info));
	struct ember_error *err = NULL;

	if (labels == NULL || info == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (api_parse_snapshot(req->body, req->body_len, labels, &err) < 0 ||
	    manager_snapshot_create(ctx->manager, req->id, labels, info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, api_encode_snapshot(info));
}

static void handle_snapshots(struct api_context *ctx, const struct api_request *req,
			     struct api_response *resp)
{
	_cleanup_free_ struct snapshot_info *infos = NULL;
	struct ember_error *err = NULL;
	size_t count, i;
	json_t *list;

	(void)req;
	if (manager_snapshot_list(ctx->manager, &infos, &count, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	list = json_array();
	for (i = 0; list != NULL && i < count; i++)
		json_array_append_new(list, api_encode_snapshot(&infos[i]));
	respond_json(resp, 200, json_pack("{s:o*}", "snapshots", list));
}

static void handle_snapshot_get(struct api_context *ctx, const struct api_request *req,
				struct api_response *resp)
{
	_cleanup_free_ struct snapshot_info *info = calloc(1, sizeof(*info));
	struct ember_error *err = NULL;

	if (info == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (manager_snapshot_get(ctx->manager, req->pid, info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, api_encode_snapshot(info));
}

static void handle_snapshot_delete(struct api_context *ctx, const struct api_request *req,
				   struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (manager_snapshot_delete(ctx->manager, req->pid, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
}

static void handle_delete(struct api_context *ctx, const struct api_request *req,
			  struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (manager_destroy(ctx->manager, req->id, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

/* The manager's view of a decoded exec body; borrows every pointer from parsed. */
static void exec_request_from_body(const struct api_exec_body *parsed,
				   struct sandbox_exec_request *out)
{
	memset(out, 0, sizeof(*out));
	out->code = parsed->code;
	out->code_len = parsed->code_len;
	out->has_stdin = parsed->has_stdin;
	out->stdin_data = (const uint8_t *)parsed->stdin_text;
	out->stdin_len = parsed->stdin_len;
	out->timeout_ms = parsed->timeout_ms;
	out->env = parsed->env;
	out->envc = parsed->envc;
	out->has_max_output = parsed->has_max_output;
	out->max_output_bytes = parsed->max_output_bytes;
	out->context_id = parsed->context_id;
	out->fresh_interpreter = parsed->fresh_interpreter;
}

/* Whether the exec streams, and how: "stream": true or an Accept naming an event format
 * (text/event-stream wins when both are named). */
static bool exec_streams(const struct api_request *req, const struct api_exec_body *parsed,
			 enum api_events_format *fmt)
{
	const char *accept = req->query->accept;

	*fmt = API_EVENTS_NDJSON;
	if (accept != NULL && strstr(accept, "text/event-stream") != NULL) {
		*fmt = API_EVENTS_SSE;
		return true;
	}
	return parsed->stream || (accept != NULL && strstr(accept, "application/x-ndjson") != NULL);
}

static void handle_exec(struct api_context *ctx, const struct api_request *req,
			struct api_response *resp)
{
	_cleanup_exec_body_ struct api_exec_body parsed = { 0 };
	_cleanup_exec_result_ struct channel_exec_result res = { 0 };
	struct sandbox_exec_request exec;
	struct ember_error *err = NULL;
	enum api_events_format fmt;

	if (api_parse_exec(req->body, req->body_len, &parsed, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (exec_streams(req, &parsed, &fmt)) {
		if (api_exec_stream_start(ctx->manager, req->id, &parsed, fmt, &resp->events,
					  &err) < 0) {
			respond_err(resp, &err);
			return;
		}
		resp->events_format = fmt;
		resp->status = 200;
		return;
	}
	exec_request_from_body(&parsed, &exec);
	if (manager_exec(ctx->manager, req->id, &exec, &res, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->stream = api_encode_exec_result(&res, &err);
	if (resp->stream == NULL) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 200;
}

static void handle_console(struct api_context *ctx, const struct api_request *req,
			   struct api_response *resp)
{
	struct ember_error *err = NULL;
	_cleanup_free_ uint8_t *text = malloc(CONSOLE_TAIL_BYTES);
	size_t len = 0, start = 0;
	uint64_t total = 0;
	json_t *obj;

	if (text == NULL) {
		ember_error_set(&err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		respond_err(resp, &err);
		return;
	}
	if (manager_console(ctx->manager, req->id, text, CONSOLE_TAIL_BYTES, &len, &total,
			    &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	/* A cut through a UTF-8 sequence would turn a text console into base64: start at the next
	 * character instead (at most 3 continuation bytes). */
	if (total > len) {
		while (start < len && start < 3 && (text[start] & 0xc0) == 0x80)
			start++;
	}
	obj = json_object();
	if (obj != NULL) {
		json_set_bytes(obj, "console", text + start, len - start, NULL);
		json_object_set_new(obj, "truncated", json_boolean(total > len - start));
		json_object_set_new(obj, "total_bytes", json_integer((json_int_t)total));
	}
	respond_json(resp, 200, obj);
}

/* The guest's whole process table (`?all=1`), for tests and debugging. */
static void respond_ps(struct api_context *ctx, const struct api_request *req,
		       struct api_response *resp)
{
	_cleanup_free_ struct proto_process *procs = NULL;
	struct ember_error *err = NULL;
	size_t count = 0;

	if (manager_ps(ctx->manager, req->id, &procs, &count, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, api_encode_processes(procs, count));
}

/* The one query flag a process route takes (all / follow / close): "1" or "true" sets it, "0"
 * or "false" or absence clears it; anything else, or another parameter, is a 400. */
static int query_flag(const struct api_query *query, const char *name, bool *on,
		      struct ember_error **err)
{
	size_t i;

	*on = false;
	if (query->too_many || query->has_nul)
		return ember_error_set(err, EMBER_E_INVALID, 0, "bad query parameters");
	for (i = 0; i < query->count; i++) {
		const char *v = query->pairs[i].value;

		if (strcmp(query->pairs[i].key, name) != 0)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "unknown query parameter `%.64s` (this route takes "
					       "%s)", query->pairs[i].key, name);
		if (v == NULL || strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
			*on = true;
		else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
			*on = false;
		else
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "query parameter `%s` must be 1 or 0", name);
	}
	return 0;
}

/* Background processes (`?all=1`: the guest's process table instead). */
static void handle_processes(struct api_context *ctx, const struct api_request *req,
			     struct api_response *resp)
{
	_cleanup_free_ struct procs_info *infos = NULL;
	struct ember_error *err = NULL;
	struct procs *procs = NULL;
	size_t count = 0, i;
	json_t *arr;
	bool all;

	if (query_flag(req->query, "all", &all, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (all) {
		respond_ps(ctx, req, resp);
		return;
	}
	if (manager_procs(ctx->manager, req->id, &procs, &err) < 0 ||
	    procs_list(procs, &infos, &count, &err) < 0) {
		procs_unref(procs);
		respond_err(resp, &err);
		return;
	}
	procs_unref(procs);
	arr = json_array();
	for (i = 0; arr != NULL && i < count; i++)
		json_array_append_new(arr, api_encode_background(&infos[i]));
	respond_json(resp, 200, arr != NULL ? json_pack("{s:o}", "processes", arr) : NULL);
}

static void handle_process_start(struct api_context *ctx, const struct api_request *req,
				 struct api_response *resp)
{
	_cleanup_process_body_ struct api_process_body parsed = { 0 };
	struct sandbox_process_request start;
	struct ember_error *err = NULL;
	struct procs_info info;

	if (api_parse_process(req->body, req->body_len, &parsed, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	start = (struct sandbox_process_request){
		.code = parsed.code, .code_len = parsed.code_len, .argv = parsed.cmd,
		.argc = parsed.cmdc, .env = parsed.env, .envc = parsed.envc, .cwd = parsed.cwd,
		.has_stdin = parsed.has_stdin, .tag = parsed.tag,
	};
	if (manager_process_start(ctx->manager, req->id, &start, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, api_encode_background(&info));
}

static void handle_process_get(struct api_context *ctx, const struct api_request *req,
			       struct api_response *resp)
{
	uint8_t *out[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 };
	struct ember_error *err = NULL;
	struct procs *procs = NULL;
	struct procs_info info;
	int32_t pid;

	if ((req->query->count > 0 &&
	     ember_error_set(&err, EMBER_E_INVALID, 0, "this route takes no query parameters")) ||
	    api_parse_pid(req->pid, &pid, &err) < 0 ||
	    manager_procs(ctx->manager, req->id, &procs, &err) < 0 ||
	    procs_get(procs, pid, &info, out, len, &err) < 0) {
		procs_unref(procs);
		respond_err(resp, &err);
		return;
	}
	procs_unref(procs);
	resp->stream = api_encode_background_output(&info, out, len, &err);
	if (resp->stream == NULL) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 200;
}

/* Events like a streamed exec's: Accept text/event-stream gives SSE, anything else ndjson. */
static void handle_process_output(struct api_context *ctx, const struct api_request *req,
				  struct api_response *resp)
{
	const char *accept = req->query->accept;
	enum api_events_format fmt = accept != NULL && strstr(accept, "text/event-stream") != NULL
					     ? API_EVENTS_SSE : API_EVENTS_NDJSON;
	struct ember_error *err = NULL;
	struct procs *procs = NULL;
	struct procs_info info;
	int32_t pid;
	bool follow;

	if (query_flag(req->query, "follow", &follow, &err) < 0 ||
	    api_parse_pid(req->pid, &pid, &err) < 0 ||
	    manager_procs(ctx->manager, req->id, &procs, &err) < 0 ||
	    procs_get(procs, pid, &info, NULL, NULL, &err) < 0) {
		procs_unref(procs);
		respond_err(resp, &err);
		return;
	}
	if (api_exec_stream_follow(procs, pid, follow, fmt, &resp->events, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->events_format = fmt;
	resp->status = 200;
}

static void handle_process_stdin(struct api_context *ctx, const struct api_request *req,
				 struct api_response *resp)
{
	struct ember_error *err = NULL;
	int32_t pid;
	bool close;

	if (query_flag(req->query, "close", &close, &err) < 0 ||
	    api_parse_pid(req->pid, &pid, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (req->body_len > API_STDIN_MAX) {
		ember_error_set(&err, EMBER_E_TOO_LARGE, 0, "stdin bodies are at most %u bytes",
				API_STDIN_MAX);
		respond_err(resp, &err);
		return;
	}
	if (manager_process_stdin(ctx->manager, req->id, pid, (const uint8_t *)req->body,
				  req->body_len, close, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
}

static void handle_process_signal(struct api_context *ctx, const struct api_request *req,
				  struct api_response *resp)
{
	struct ember_error *err = NULL;
	int32_t pid;
	int sig;

	if (api_parse_pid(req->pid, &pid, &err) < 0 ||
	    api_parse_signal(req->body, req->body_len, &sig, &err) < 0 ||
	    manager_process_signal(ctx->manager, req->id, pid, sig, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
}

/* --- files (docs/api.md "Files") --- */

static void handle_files_get(struct api_context *ctx, const struct api_request *req,
			     struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (api_download_open(ctx->manager, req->id, req->query, &resp->download, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 200;
}

/* Never reached: server.c streams an upload's body through api_route_upload(). The row is
 * here for the method list (405's Allow) and the contract. */
static void handle_files_put(struct api_context *ctx, const struct api_request *req,
			     struct api_response *resp)
{
	struct ember_error *err = NULL;

	(void)ctx;
	(void)req;
	ember_error_set(&err, EMBER_E_INTERNAL, 0, "an upload's body was not streamed");
	respond_err(resp, &err);
}

/* A directory's entries: {"entries":[...],"truncated":bool}. */
static json_t *encode_fs_list(const struct proto_fs_reply *reply)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < reply->count; i++)
		json_array_append_new(arr, api_encode_fs_entry(&reply->entries[i]));
	return arr != NULL ? json_pack("{s:o, s:b}", "entries", arr, "truncated",
				       reply->truncated)
			   : NULL;
}

/* GET /fs?path=P: the entry of P (lstat); a directory's entries instead. */
static void handle_fs_get(struct api_context *ctx, const struct api_request *req,
			  struct api_response *resp)
{
	_cleanup_free_ struct proto_fs_request *fs = malloc(sizeof(*fs));
	struct proto_fs_reply reply = { .kind = PROTO_FS_REPLY_NONE };
	struct ember_error *err = NULL;
	unsigned status;
	json_t *body;

	if (fs == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (api_parse_fs_query(req->query, API_FS_QUERY_PATH, fs, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	fs->op = PROTO_FS_STAT;
	if (manager_fs(ctx->manager, req->id, fs, &reply, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (reply.kind == PROTO_FS_REPLY_ENTRY && reply.entry.type == PROTO_FS_TYPE_DIR) {
		proto_fs_reply_release(&reply);
		fs->op = PROTO_FS_LIST;
		if (manager_fs(ctx->manager, req->id, fs, &reply, &err) < 0) {
			respond_err(resp, &err);
			return;
		}
	}
	if (reply.kind == PROTO_FS_REPLY_LIST)
		body = encode_fs_list(&reply);
	else if (reply.kind == PROTO_FS_REPLY_ENTRY)
		body = api_encode_fs_entry(&reply.entry);
	else
		body = api_encode_error(ember_error_kind_name(EMBER_E_GUEST),
					"the guest answered a stat without an entry");
	status = reply.kind == PROTO_FS_REPLY_NONE ? 502 : 200;
	proto_fs_reply_release(&reply);
	respond_json(resp, status, body);
}

/* POST /fs/mkdir, /fs/move, /fs/remove: 204 once done. */
static void handle_fs_op(struct api_context *ctx, const struct api_request *req,
			 struct api_response *resp, enum proto_fs_op op)
{
	_cleanup_free_ struct proto_fs_request *fs = malloc(sizeof(*fs));
	struct proto_fs_reply reply;
	struct ember_error *err = NULL;

	if (fs == NULL) {
		api_response_error(resp, NULL);
		return;
	}
	if (api_parse_fs_body(op, req->body, req->body_len, fs, &err) < 0 ||
	    manager_fs(ctx->manager, req->id, fs, &reply, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	proto_fs_reply_release(&reply);
	resp->status = 204;
	resp->body = NULL;
}

static void handle_fs_mkdir(struct api_context *ctx, const struct api_request *req,
			    struct api_response *resp)
{
	handle_fs_op(ctx, req, resp, PROTO_FS_MKDIR);
}

static void handle_fs_move(struct api_context *ctx, const struct api_request *req,
			   struct api_response *resp)
{
	handle_fs_op(ctx, req, resp, PROTO_FS_MOVE);
}

static void handle_fs_remove(struct api_context *ctx, const struct api_request *req,
			     struct api_response *resp)
{
	handle_fs_op(ctx, req, resp, PROTO_FS_REMOVE);
}

/* Adding a route is adding a row. Rows sharing a pattern list their methods in the order the
 * Allow header gives them. */
/* --- code contexts --- */

/* A {context_id} segment: the shape of one, or 404 (nothing odd reaches the manager). */
static bool context_id_ok(const struct api_request *req, struct api_response *resp)
{
	char msg[96];

	if (req->pid != NULL && proto_context_id_valid(req->pid))
		return true;
	snprintf(msg, sizeof(msg), "no context `%.40s` in this sandbox",
		 req->pid != NULL ? req->pid : "");
	respond_not_found(resp, msg);
	return false;
}

static void handle_contexts(struct api_context *ctx, const struct api_request *req,
			    struct api_response *resp)
{
	struct sandbox_context items[SANDBOX_CONTEXTS_MAX];
	struct ember_error *err = NULL;
	json_t *arr;
	size_t i, n;

	if (manager_context_list(ctx->manager, req->id, items, &n, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	arr = json_array();
	for (i = 0; arr != NULL && i < n; i++)
		json_array_append_new(arr, api_encode_context(&items[i]));
	respond_json(resp, 200, arr != NULL ? json_pack("{s:o}", "contexts", arr) : NULL);
}

static void handle_context_create(struct api_context *ctx, const struct api_request *req,
				  struct api_response *resp)
{
	_cleanup_context_body_ struct api_context_body parsed = { 0 };
	struct sandbox_context_request creq;
	struct ember_error *err = NULL;
	struct sandbox_context info;

	if (api_parse_context(req->body, req->body_len, &parsed, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	creq = (struct sandbox_context_request){ .language = parsed.language, .cwd = parsed.cwd,
						 .env = parsed.env, .envc = parsed.envc };
	if (manager_context_create(ctx->manager, req->id, &creq, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, api_encode_context(&info));
}

static void handle_context_get(struct api_context *ctx, const struct api_request *req,
			       struct api_response *resp)
{
	struct ember_error *err = NULL;
	struct sandbox_context info;

	if (!context_id_ok(req, resp))
		return;
	if (manager_context_get(ctx->manager, req->id, req->pid, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, api_encode_context(&info));
}

static void handle_context_delete(struct api_context *ctx, const struct api_request *req,
				  struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (!context_id_ok(req, resp))
		return;
	if (manager_context_delete(ctx->manager, req->id, req->pid, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

static void handle_context_restart(struct api_context *ctx, const struct api_request *req,
				   struct api_response *resp)
{
	struct ember_error *err = NULL;
	struct sandbox_context info;

	if (!context_id_ok(req, resp))
		return;
	if (manager_context_restart(ctx->manager, req->id, req->pid, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, api_encode_context(&info));
}

/* PATCH /sandboxes/{id}/network: a new allow (and deny) list for a running sandbox. */
static void handle_network(struct api_context *ctx, const struct api_request *req,
			   struct api_response *resp)
{
	struct net_policy patch = { 0 };
	struct sandbox_info info;
	struct ember_error *err = NULL;
	bool has_deny;
	int ret;

	ret = api_parse_network_patch(req->body, req->body_len, &patch, &has_deny, &err);
	if (ret == 0)
		ret = manager_network_update(ctx->manager, req->id, &patch, has_deny, &err);
	net_policy_release(&patch);
	if (ret < 0 || manager_get(ctx->manager, req->id, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 200, sandbox_json(ctx, &info));
}

/* --- MCP (docs/mcp.md): the transport's own answers, JSON-RPC bodies --- */

static void handle_mcp(struct api_context *ctx, const struct api_request *req,
		       struct api_response *resp)
{
	struct mcp_http_request mreq = {
		.method = req->method, .session_id = req->query->mcp_session_id,
		.protocol_version = req->query->mcp_protocol_version, .body = req->body,
		.body_len = req->body_len,
	};
	struct ember_error *err = NULL;

	if (ctx->mcp == NULL) {
		ember_error_set(&err, EMBER_E_UNAVAILABLE, 0, "the MCP server is not running");
		respond_err(resp, &err);
		return;
	}
	mcp_handle(ctx->mcp, &mreq, resp);
}

static const struct route routes[] = {
	{ "GET", "/healthz", handle_healthz },
	{ "GET", "/metrics", handle_metrics },
	{ "GET", "/packs", handle_packs },
	{ "POST", "/packs/reload", handle_packs_reload },
	{ "GET", "/sandboxes", handle_list },
	{ "POST", "/sandboxes", handle_create },
	{ "GET", "/sandboxes/{id}", handle_get },
	{ "DELETE", "/sandboxes/{id}", handle_delete },
	{ "POST", "/sandboxes/{id}/exec", handle_exec },
	{ "POST", "/sandboxes/{id}/timeout", handle_timeout },
	{ "POST", "/sandboxes/{id}/pause", handle_pause },
	{ "POST", "/sandboxes/{id}/resume", handle_resume },
	{ "POST", "/sandboxes/{id}/fork", handle_fork },
	{ "POST", "/sandboxes/{id}/snapshots", handle_snapshot_create },
	{ "GET", "/snapshots", handle_snapshots },
	{ "GET", "/snapshots/{snapshot_id}", handle_snapshot_get },
	{ "DELETE", "/snapshots/{snapshot_id}", handle_snapshot_delete },
	{ "PATCH", "/sandboxes/{id}/network", handle_network },
	{ "GET", "/sandboxes/{id}/console", handle_console },
	{ "GET", "/sandboxes/{id}/processes", handle_processes },
	{ "POST", "/sandboxes/{id}/processes", handle_process_start },
	{ "GET", "/sandboxes/{id}/processes/{pid}", handle_process_get },
	{ "GET", "/sandboxes/{id}/processes/{pid}/output", handle_process_output },
	{ "POST", "/sandboxes/{id}/processes/{pid}/stdin", handle_process_stdin },
	{ "POST", "/sandboxes/{id}/processes/{pid}/signal", handle_process_signal },
	{ "GET", "/sandboxes/{id}/contexts", handle_contexts },
	{ "POST", "/sandboxes/{id}/contexts", handle_context_create },
	{ "GET", "/sandboxes/{id}/contexts/{context_id}", handle_context_get },
	{ "DELETE", "/sandboxes/{id}/contexts/{context_id}", handle_context_delete },
	{ "POST", "/sandboxes/{id}/contexts/{context_id}/restart", handle_context_restart },
	{ "GET", "/sandboxes/{id}/files", handle_files_get },
	{ "PUT", "/sandboxes/{id}/files", handle_files_put },
	{ "GET", "/sandboxes/{id}/fs", handle_fs_get },
	{ "POST", "/sandboxes/{id}/fs/mkdir", handle_fs_mkdir },
	{ "POST", "/sandboxes/{id}/fs/move", handle_fs_move },
	{ "POST", "/sandboxes/{id}/fs/remove", handle_fs_remove },
	{ "POST", "/mcp", handle_mcp },
	{ "DELETE", "/mcp", handle_mcp },
};

static void capture_id(struct path_id *id, const char *segment, size_t len)
{
	id->present = true;
	id->too_long = len > SANDBOX_ID_LEN;
	if (id->too_long)
		len = 0;
	memcpy(id->text, segment, len);
	id->text[len] = '\0';
}

/* Walks pattern and path one '/'-segment at a time. */
static enum match match_pattern(const char *pattern, const char *path, struct path_id *id)
{
	bool under_id = false;

	memset(id, 0, sizeof(*id));
	while (*pattern == '/' && *path == '/') {
		size_t plen = strcspn(++pattern, "/");
		size_t slen = strcspn(++path, "/");

		if (plen == 4 && strncmp(pattern, "{id}", 4) == 0) {
			capture_id(id, path, slen);
			under_id = true;
		} else if ((plen == 5 && strncmp(pattern, "{pid}", 5) == 0) ||
			   (plen == 12 && strncmp(pattern, "{context_id}", 12) == 0) ||
			   (plen == 13 && strncmp(pattern, "{snapshot_id}", 13) == 0)) {
			id->has_pid = true;
			if (slen < sizeof(id->pid)) {
				memcpy(id->pid, path, slen);
				id->pid[slen] = '\0';
			}
		} else if (plen != slen || strncmp(pattern, path, plen) != 0) {
			break;
		}
		pattern += plen;
		path += slen;
	}
	if (*pattern == '\0' && *path == '\0')
		return MATCH_FULL;
	return under_id ? MATCH_UNDER_ID : MATCH_NONE;
}

/* Ids are checked for shape before anything else (even the method): nothing odd reaches the
 * manager. Returns true when it answered. */
static bool reject_bad_id(const struct path_id *id, struct api_response *resp)
{
	char msg[128];

	if (!id->present)
		return false;
	if (id->too_long) {
		respond_not_found(resp, "no such sandbox");
		return true;
	}
	if (api_valid_sandbox_id(id->text))
		return false;
	snprintf(msg, sizeof(msg), "no sandbox `%s`", id->text);
	respond_not_found(resp, msg);
	return true;
}

/* 405, with the methods of every row that has pattern, in table order. */
static void respond_method_not_allowed(struct api_response *resp, const char *method,
				       const char *pattern)
{
	char msg[128];
	size_t i, used = 0;

	for (i = 0; i < ARRAY_SIZE(routes); i++) {
		if (strcmp(routes[i].pattern, pattern) == 0)
			used += (size_t)snprintf(resp->allow + used, sizeof(resp->allow) - used,
						 "%s%s", used > 0 ? ", " : "", routes[i].method);
	}
	snprintf(msg, sizeof(msg), "method %.16s is not allowed here (allowed: %s)", method,
		 resp->allow);
	resp->status = 405;
	resp->body = api_encode_error(ember_error_kind_name(EMBER_E_METHOD), msg);
}

/* A path no pattern matches: under a sandbox id, that id is checked first. */
static void respond_no_route(const char *path, struct api_response *resp)
{
	struct path_id id;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(routes); i++) {
		if (match_pattern(routes[i].pattern, path, &id) == MATCH_UNDER_ID) {
			if (!reject_bad_id(&id, resp))
				respond_not_found(resp, "unknown route");
			return;
		}
	}
	respond_not_found(resp, "unknown route (see docs/api.md)");
}

void api_route(struct api_context *ctx, const char *method, const char *path,
	       const struct api_query *query, const char *body, size_t body_len,
	       struct api_response *resp)
{
	static const struct api_query no_query = { .count = 0 };
	const struct route *row, *end = routes + ARRAY_SIZE(routes);
	struct api_request req = { .method = method, .body = body, .body_len = body_len,
				   .query = query != NULL ? query : &no_query };
	struct path_id id;
	const char *pattern;

	memset(resp, 0, sizeof(*resp));
	/* The first row whose pattern matches decides the pattern (so a literal segment that
	 * would also match an {id} must come first); its method picks among the rows sharing it. */
	for (row = routes; row < end; row++) {
		if (match_pattern(row->pattern, path, &id) == MATCH_FULL)
			break;
	}
	if (row == end) {
		respond_no_route(path, resp);
		return;
	}
	if (reject_bad_id(&id, resp))
		return;
	req.id = id.present ? id.text : NULL;
	req.pid = id.has_pid ? id.pid : NULL;
	pattern = row->pattern;
	for (; row < end; row++) {
		if (strcmp(row->pattern, pattern) == 0 && strcmp(row->method, method) == 0) {
			row->handler(ctx, &req, resp);
			return;
		}
	}
	respond_method_not_allowed(resp, method, pattern);
}

bool api_route_upload(struct api_context *ctx, const char *method, const char *path,
		      const struct api_query *query, struct api_upload **out)
{
	struct path_id id;

	if (strcmp(method, "PUT") != 0 ||
	    match_pattern("/sandboxes/{id}/files", path, &id) != MATCH_FULL)
		return false;
	*out = api_upload_begin(ctx->manager, !id.too_long && api_valid_sandbox_id(id.text)
						      ? id.text : NULL, query);
	return true;
}
