/* routes.c - API v1 handlers. See docs/api.md for the contract. */
#include "api/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/encode.h"
#include "api/requests.h"
#include "util/fdio.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

#define CONSOLE_TAIL_BYTES (16 * 1024)

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
	case EMBER_E_INTERNAL: break;
	}
	return 500;
}

void api_response_error(struct api_response *resp, const struct ember_error *err)
{
	enum ember_error_kind kind = err != NULL ? err->kind : EMBER_E_INTERNAL;

	resp->status = api_status_for(kind);
	resp->body = api_encode_error(ember_error_kind_name(kind),
				      err != NULL ? err->message : "out of memory");
}

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

static void method_not_allowed(struct api_response *resp, const char *method, const char *allow)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "method %.16s is not allowed here (allowed: %s)", method,
		 allow);
	resp->status = 405;
	resp->allow = allow;
	resp->body = api_encode_error(ember_error_kind_name(EMBER_E_METHOD), msg);
}

static void route_healthz(struct api_context *ctx, struct api_response *resp)
{
	struct manager_stats st;
	json_t *body;

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
		json_t *by_pack = json_object();
		size_t i;

		for (i = 0; by_pack != NULL && i < ctx->catalog->count; i++)
			json_object_set_new(by_pack, ctx->catalog->packs[i].name,
					    json_integer(st.pool_ready_by_pack[i]));
		json_object_set_new(json_object_get(body, "pool"), "ready_by_pack", by_pack);
		json_object_set_new(json_object_get(body, "pool"), "size_per_pack",
				    json_integer(st.pool_size));
	}
	respond_json(resp, 200, body);
}

static void route_packs(struct api_context *ctx, struct api_response *resp)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < ctx->catalog->count; i++)
		json_array_append_new(arr, api_encode_pack(&ctx->catalog->packs[i]));
	respond_json(resp, 200, arr != NULL ? json_pack("{s:o}", "packs", arr) : NULL);
}

static void route_create(struct api_context *ctx, const char *body, size_t len,
			 struct api_response *resp)
{
	struct api_create_body parsed;
	struct sandbox_create_request req = { 0 };
	struct sandbox_info info;
	struct ember_error *err = NULL;

	if (api_parse_create(body, len, &parsed, &err) < 0)
		{ respond_err(resp, &err); return; }
	req.language_pack = parsed.language_pack[0] != '\0' ? parsed.language_pack : NULL;
	req.vcpus = parsed.vcpus;
	req.memory_mib = parsed.memory_mib;
	req.timeout_s = parsed.timeout_s;
	req.overlay_mib = parsed.overlay_mib;
	if (manager_create_sandbox(ctx->manager, &req, &info, &err) < 0)
		{ respond_err(resp, &err); return; }
	respond_json(resp, 201, api_encode_sandbox(&info));
}

static void route_list(struct api_context *ctx, struct api_response *resp)
{
	struct sandbox_info *infos = NULL;
	struct ember_error *err = NULL;
	size_t count = 0, i;
	json_t *arr;

	if (manager_list(ctx->manager, &infos, &count, &err) < 0)
		{ respond_err(resp, &err); return; }
	arr = json_array();
	for (i = 0; arr != NULL && i < count; i++)
		json_array_append_new(arr, api_encode_sandbox(&infos[i]));
	free(infos);
	respond_json(resp, 200, arr != NULL ? json_pack("{s:o}", "sandboxes", arr) : NULL);
}

static void route_get(struct api_context *ctx, const char *id, struct api_response *resp)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;

	if (manager_get(ctx->manager, id, &info, &err) < 0)
		{ respond_err(resp, &err); return; }
	respond_json(resp, 200, api_encode_sandbox(&info));
}

static void route_delete(struct api_context *ctx, const char *id, struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (manager_destroy(ctx->manager, id, &err) < 0)
		{ respond_err(resp, &err); return; }
	resp->status = 204;
	resp->body = NULL;
}

static void route_exec(struct api_context *ctx, const char *id, const char *body, size_t len,
		       struct api_response *resp)
{
	struct api_exec_body parsed;
	struct sandbox_exec_request req = { 0 };
	struct channel_exec_result res;
	struct ember_error *err = NULL;

	if (api_parse_exec(body, len, &parsed, &err) < 0)
		{ respond_err(resp, &err); return; }
	req.code = parsed.code;
	req.code_len = parsed.code_len;
	req.has_stdin = parsed.has_stdin;
	req.stdin_data = (const uint8_t *)parsed.stdin_text;
	req.stdin_len = parsed.stdin_len;
	req.timeout_ms = parsed.timeout_ms;
	req.env = parsed.env;
	req.envc = parsed.envc;
	req.has_max_output = parsed.has_max_output;
	req.max_output_bytes = parsed.max_output_bytes;
	if (manager_exec(ctx->manager, id, &req, &res, &err) < 0) {
		api_exec_body_release(&parsed);
		{ respond_err(resp, &err); return; }
	}
	api_exec_body_release(&parsed);
	respond_json(resp, 200, api_encode_exec_result(&res));
	channel_exec_result_release(&res);
}

static void route_console(struct api_context *ctx, const char *id, struct api_response *resp)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;
	char *text = NULL;
	size_t len = 0;
	json_t *obj;

	if (manager_get(ctx->manager, id, &info, &err) < 0)
		{ respond_err(resp, &err); return; }
	if (info.console_log[0] != '\0')
		file_read_all(info.console_log, 8u << 20, &text, &len, NULL);
	obj = json_object();
	if (obj != NULL) {
		size_t start = len > CONSOLE_TAIL_BYTES ? len - CONSOLE_TAIL_BYTES : 0;

		json_set_bytes(obj, "console", (const uint8_t *)(text != NULL ? text + start : ""),
			       len - start, NULL);
		json_object_set_new(obj, "truncated", json_boolean(start > 0));
	}
	free(text);
	respond_json(resp, 200, obj);
}

static void route_processes(struct api_context *ctx, const char *id, struct api_response *resp)
{
	struct proto_process *procs = NULL;
	struct ember_error *err = NULL;
	size_t count = 0;
	json_t *body;

	if (manager_ps(ctx->manager, id, &procs, &count, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	body = api_encode_processes(procs, count);
	free(procs);
	respond_json(resp, 200, body);
}

static void not_found(struct api_response *resp, const char *what)
{
	resp->status = 404;
	resp->body = api_encode_error(ember_error_kind_name(EMBER_E_NOT_FOUND), what);
}

static void route_sandbox(struct api_context *ctx, const char *method, const char *rest,
			  const char *body, size_t len, struct api_response *resp)
{
	char id[SANDBOX_ID_LEN + 1];
	const char *slash = strchr(rest, '/');
	size_t id_len = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	const char *sub = slash != NULL ? slash + 1 : NULL;
	char msg[128];

	if (id_len > SANDBOX_ID_LEN) {
		not_found(resp, "no such sandbox");
		return;
	}
	memcpy(id, rest, id_len);
	id[id_len] = '\0';
	/* Ids are checked for shape before anything else: nothing odd reaches the manager. */
	if (!api_valid_sandbox_id(id)) {
		snprintf(msg, sizeof(msg), "no sandbox `%s`", id);
		not_found(resp, msg);
		return;
	}
	if (sub == NULL) {
		if (strcmp(method, "GET") == 0)
			{ route_get(ctx, id, resp); return; }
		if (strcmp(method, "DELETE") == 0)
			{ route_delete(ctx, id, resp); return; }
		{ method_not_allowed(resp, method, "GET, DELETE"); return; }
	}
	if (strcmp(sub, "exec") == 0) {
		if (strcmp(method, "POST") == 0)
			{ route_exec(ctx, id, body, len, resp); return; }
		{ method_not_allowed(resp, method, "POST"); return; }
	}
	if (strcmp(sub, "console") == 0 || strcmp(sub, "processes") == 0) {
		if (strcmp(method, "GET") != 0)
			{ method_not_allowed(resp, method, "GET"); return; }
		if (sub[0] == 'c')
			{ route_console(ctx, id, resp); return; }
		{ route_processes(ctx, id, resp); return; }
	}
	not_found(resp, "unknown route");
}

void api_route(struct api_context *ctx, const char *method, const char *path, const char *body,
	       size_t body_len, struct api_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	if (strcmp(path, "/healthz") == 0) {
		if (strcmp(method, "GET") != 0)
			{ method_not_allowed(resp, method, "GET"); return; }
		{ route_healthz(ctx, resp); return; }
	}
	if (strcmp(path, "/packs") == 0) {
		if (strcmp(method, "GET") != 0)
			{ method_not_allowed(resp, method, "GET"); return; }
		{ route_packs(ctx, resp); return; }
	}
	if (strcmp(path, "/sandboxes") == 0) {
		if (strcmp(method, "POST") == 0)
			{ route_create(ctx, body, body_len, resp); return; }
		if (strcmp(method, "GET") == 0)
			{ route_list(ctx, resp); return; }
		{ method_not_allowed(resp, method, "GET, POST"); return; }
	}
	if (strncmp(path, "/sandboxes/", 11) == 0)
		{ route_sandbox(ctx, method, path + 11, body, body_len, resp); return; }
	not_found(resp, "unknown route (see docs/api.md)");
}
