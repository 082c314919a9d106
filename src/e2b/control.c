/* control.c - the E2B control plane (REST, X-API-KEY): create, get, list, delete, timeout,
 * connect, pause and resume, fork and snapshots, each mapped onto the manager call the native
 * route makes; the calls emberd cannot serve (metrics, logs, templates, volumes) answer 501
 * saying why. Also derives each sandbox's envd access token. Matching walks one table: O(rows),
 * two dozen. */
#include "e2b/e2b.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/controlreq.h"
#include "sandbox/snapshots.h"
#include "util/cleanup.h"
#include "util/hex.h"
#include "util/jsonutil.h"
#include "util/text.h"
#include "util/timeutil.h"

/* The envd version the SDKs are told. 0.5.7 is the first with octet-stream uploads (what
 * upload.c serves best) and after closeStdin (0.5.2) and no-default-user auth (0.4.0); the
 * features of later versions emberd does not have (file metadata 0.6.2, watch events with
 * entries 0.6.3, network mounts 0.6.4) then fail in the SDK itself with its TemplateError,
 * before a request is sent. */
#define E2B_ENVD_VERSION "0.5.7"
#define E2B_CLIENT_ID "emberd"
/* The HMAC input that makes a sandbox's access token: a tag, so the same daemon token never
 * signs anything else to the same value. */
#define E2B_TOKEN_TAG "emberd e2b envd access token v1\n"
#define E2B_TOKEN_HEX (2 * 32)

/* What a handler gets: the request and the {id} segment, when its pattern has one. */
struct control_request {
	const struct e2b_context *ctx;
	const struct e2b_request *req;
	const char *id;
};

typedef void control_handler(const struct control_request *cr, struct api_response *resp);

struct control_route {
	const char *method;
	const char *pattern;    /* segments; "{id}" one sandbox id segment, a final "*" the rest */
	control_handler *handler;
	const char *unsupported; /* handler NULL: answer 501 with this */
};

static struct manager *manager_of(const struct control_request *cr)
{
	return cr->ctx->api->manager;
}

static bool has_token(const struct e2b_context *ctx)
{
	return ctx->auth_token != NULL && ctx->auth_token[0] != '\0';
}

/* hex(HMAC-SHA256(daemon token, tag + id)): the same after a restart (nothing to store), one
 * sandbox's token opens no other, and it reveals nothing of the daemon token. */
static int access_token(const struct e2b_context *ctx, const char *id,
			char out[E2B_TOKEN_HEX + 1])
{
	unsigned char data[sizeof(E2B_TOKEN_TAG) + SANDBOX_ID_LEN], mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	size_t tag = strlen(E2B_TOKEN_TAG), id_len = strlen(id);

	if (id_len > SANDBOX_ID_LEN)
		return -1;
	memcpy(data, E2B_TOKEN_TAG, tag);
	memcpy(data + tag, id, id_len);
	if (HMAC(EVP_sha256(), ctx->auth_token, (int)strlen(ctx->auth_token), data, tag + id_len,
		 mac, &mac_len) == NULL || mac_len != 32)
		return -1;
	hex_encode(mac, mac_len, out);
	out[E2B_TOKEN_HEX] = '\0';
	return 0;
}

bool e2b_access_token_ok(const struct e2b_context *ctx, const char *sandbox_id,
			 const char *token)
{
	char want[E2B_TOKEN_HEX + 1];

	if (!has_token(ctx))
		return true;
	if (sandbox_id == NULL || token == NULL || !api_valid_sandbox_id(sandbox_id) ||
	    strlen(token) != E2B_TOKEN_HEX || access_token(ctx, sandbox_id, want) < 0)
		return false;
	return CRYPTO_memcmp(want, token, E2B_TOKEN_HEX) == 0;
}

/* ---- encoding ---- */

static const char *template_of(const struct sandbox_info *info)
{
	const char *t = sandbox_labels_get(&info->labels, E2B_TEMPLATE_LABEL);

	return t != NULL ? t : info->language_pack;
}

static json_t *time_json(int64_t wall_ns)
{
	char text[40];

	time_format_rfc3339(wall_ns, text, sizeof(text));
	return json_string(text);
}

/* The labels the SDK set, without emberd's own. */
static json_t *metadata_json(const struct sandbox_info *info)
{
	json_t *obj = json_object();
	size_t i;

	for (i = 0; obj != NULL && i < info->labels.count; i++) {
		const struct sandbox_label *l = &info->labels.items[i];

		if (strncmp(l->key, E2B_LABEL_PREFIX, strlen(E2B_LABEL_PREFIX)) != 0)
			json_object_set_new(obj, l->key, json_string(l->value));
	}
	return obj;
}

/* Adds envdAccessToken when the daemon has a token, and the same as trafficAccessToken: the
 * code interpreter SDK sends that one (E2B-Traffic-Access-Token) with its context calls, which
 * carry no X-Access-Token (route.c). */
static int add_token(const struct control_request *cr, json_t *obj, const char *id)
{
	char token[E2B_TOKEN_HEX + 1];

	if (!has_token(cr->ctx))
		return 0;
	if (access_token(cr->ctx, id, token) < 0)
		return -1;
	if (json_object_set_new(obj, "trafficAccessToken", json_string(token)) < 0)
		return -1;
	return json_object_set_new(obj, "envdAccessToken", json_string(token));
}

/* Sandbox (create, connect). */
static json_t *sandbox_json(const struct control_request *cr, const struct sandbox_info *info)
{
	json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:n, s:n}", "sandboxID", info->id,
				"templateID", template_of(info), "clientID", E2B_CLIENT_ID,
				"envdVersion", E2B_ENVD_VERSION, "domain", "trafficAccessToken");

	if (obj != NULL && add_token(cr, obj, info->id) < 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* E2B's two states: a sandbox being paused still runs (a fork's or a snapshot's brief pause is
 * one too); one being resumed does not yet. */
static bool shown_paused(const struct sandbox_info *info)
{
	return info->state == SANDBOX_PAUSED || info->state == SANDBOX_RESUMING;
}

/* ListedSandbox (list), and with detail SandboxDetail (get). */
static json_t *listed_json(const struct control_request *cr, const struct sandbox_info *info,
			   bool detail)
{
	json_t *obj = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:s, s:o, s:s, s:[]}",
				"sandboxID", info->id, "templateID", template_of(info),
				"clientID", E2B_CLIENT_ID, "cpuCount", (int)info->vcpus,
				"memoryMB", (int)info->memory_mib, "diskSizeMB",
				(int)info->overlay_mib, "startedAt", time_json(info->created_wall_ns),
				"endAt", time_json(info->expires_wall_ns), "envdVersion",
				E2B_ENVD_VERSION, "metadata", metadata_json(info), "state",
				shown_paused(info) ? "paused" : "running",
				"volumeMounts");
	struct ember_error *err = NULL;
	json_t *network;
	const char *mode;

	if (obj == NULL || !detail)
		return obj;
	/* allowInternetAccess: true for open egress, false for none, null for an allow list. */
	network = manager_network_json(manager_of(cr), info->id, &err);
	ember_error_free(&err);
	mode = network != NULL ? json_string_value(json_object_get(network, "mode")) : NULL;
	json_object_set_new(obj, "allowInternetAccess",
			    mode == NULL || strcmp(mode, "allowlist") == 0
				    ? json_null()
				    : json_boolean(strcmp(mode, "open") == 0));
	json_decref(network);
	json_object_set_new(obj, "domain", json_null());
	json_object_set_new(obj, "lifecycle",
			    json_pack("{s:s, s:b}", "onTimeout", "kill", "autoResume", 0));
	if (add_token(cr, obj, info->id) < 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static void respond_json(struct api_response *resp, unsigned status, json_t *body)
{
	if (body == NULL) {
		e2b_error_rest(resp, NULL);
		return;
	}
	resp->status = status;
	resp->body = body;
}

static void respond_err(struct api_response *resp, struct ember_error **err)
{
	e2b_error_rest(resp, *err);
	ember_error_free(err);
}

/* ---- create ---- */

/* The pack a template names: base and code-interpreter-v1 (the SDKs' defaults) are python. */
static const char *pack_for_template(struct manager *m, const char *template_id,
				     struct ember_error **err)
{
	const struct catalog *cat = manager_catalog(m);
	const char *name = template_id;
	char names[512], shown[E2B_TEMPLATE_MAX * 4 + 1];

	if (strcmp(name, "base") == 0 || strcmp(name, "code-interpreter-v1") == 0)
		name = "python";
	if (catalog_find(cat, name) != NULL)
		return name;
	catalog_names(cat, names, sizeof(names));
	text_escape_log(template_id, shown, sizeof(shown));
	ember_error_set(err, EMBER_E_NOT_FOUND, 0,
			"template `%s` not found: emberd's templates are its packs (%s; base and "
			"code-interpreter-v1 name python) and its snapshots (their ids and names)",
			shown, names);
	return NULL;
}

/* The snapshot a template names: its id, or the newest with that name. O(snapshots), at most
 * --max-snapshots, on a create that names no pack only. */
static int snapshot_for_template(struct manager *m, const char *template_id,
				 char out[SNAPSHOT_ID_LEN + 1])
{
	_cleanup_free_ struct snapshot_info *infos = NULL;
	struct ember_error *err = NULL;
	size_t count = 0, i, found = SIZE_MAX;

	if (manager_snapshot_list(m, &infos, &count, &err) < 0) {
		ember_error_free(&err);
		return -1;
	}
	for (i = 0; i < count; i++) {
		const char *name = sandbox_labels_get(&infos[i].labels, E2B_SNAPSHOT_NAME_LABEL);

		if (strcmp(infos[i].id, template_id) == 0) {
			found = i;
			break;
		}
		if (name != NULL && strcmp(name, template_id) == 0 &&
		    (found == SIZE_MAX || infos[i].created_wall_ns >= infos[found].created_wall_ns))
			found = i;
	}
	if (found == SIZE_MAX)
		return -1;
	memcpy(out, infos[found].id, SNAPSHOT_ID_LEN + 1);
	return 0;
}

static void handle_create(const struct control_request *cr, struct api_response *resp)
{
	_cleanup_free_ struct e2b_create_body *body = malloc(sizeof(*body));
	struct sandbox_create_request create = { 0 };
	struct net_policy network = { .mode = NET_MODE_NONE };
	struct sandbox_info info;
	struct ember_error *err = NULL;
	char snapshot[SNAPSHOT_ID_LEN + 1];

	if (body == NULL) {
		e2b_error_rest(resp, NULL);
		return;
	}
	if (e2b_parse_create(cr->req->body, cr->req->body_len, body, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	/* A template is a pack or else a snapshot (createSnapshot's id or name): then the pack
	 * and shape are the snapshot's. */
	create.language_pack = pack_for_template(manager_of(cr), body->template_id, &err);
	if (create.language_pack == NULL && err->kind == EMBER_E_NOT_FOUND &&
	    snapshot_for_template(manager_of(cr), body->template_id, snapshot) == 0) {
		ember_error_free(&err);
		create.from_snapshot = snapshot;
	}
	if ((create.language_pack == NULL && create.from_snapshot == NULL) ||
	    sandbox_labels_add(&body->labels, E2B_TEMPLATE_LABEL, body->template_id,
			       strlen(body->template_id), &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	/* allow_internet_access: true is the native open egress (net/egress.h); a daemon that
	 * does not allow it answers 400 saying which flag it needs. */
	if (body->allow_internet)
		network.mode = NET_MODE_OPEN;
	create.timeout_s = body->timeout_s;
	create.labels = &body->labels;
	create.env = &body->env;
	create.network = &network;
	if (manager_create_sandbox(manager_of(cr), &create, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, sandbox_json(cr, &info));
}

/* ---- one sandbox ---- */

/* The sandbox, or a 404 in the SDK's words. A sandbox being destroyed is gone already. */
static int get_live(const struct control_request *cr, struct sandbox_info *info,
		    struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (manager_get(manager_of(cr), cr->id, info, &err) < 0) {
		respond_err(resp, &err);
		return -1;
	}
	if (info->state == SANDBOX_DESTROYING || info->state == SANDBOX_GONE) {
		e2b_error_rest_msg(resp, 404, "sandbox is being killed");
		return -1;
	}
	return 0;
}

static void handle_get(const struct control_request *cr, struct api_response *resp)
{
	struct sandbox_info info;

	if (get_live(cr, &info, resp) == 0)
		respond_json(resp, 200, listed_json(cr, &info, true));
}

static void handle_delete(const struct control_request *cr, struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (manager_destroy(manager_of(cr), cr->id, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

static void handle_timeout(const struct control_request *cr, struct api_response *resp)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;
	unsigned timeout_s;

	if (e2b_parse_timeout(cr->req->body, cr->req->body_len, &timeout_s, &err) < 0 ||
	    manager_set_timeout(manager_of(cr), cr->id, timeout_s, &info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

/* The SDK reads every 409 of a pause as "already paused" (pause() answers false): one that
 * cannot be paused now (booting, an exec in flight, a network, mounts, a driver that cannot
 * save) is a 400 saying why, unless it got paused meanwhile. */
static void respond_pause_refused(const struct control_request *cr, struct ember_error **err,
				  struct api_response *resp)
{
	struct sandbox_info now;

	if ((*err)->kind != EMBER_E_CONFLICT) {
		respond_err(resp, err);
		return;
	}
	if (get_live(cr, &now, resp) == 0)
		e2b_error_rest_msg(resp,
				   shown_paused(&now) || now.state == SANDBOX_PAUSING ? 409 : 400,
				   (*err)->message);
	ember_error_free(err);
}

/* E2B: 204, 409 when already paused. */
static void handle_pause(const struct control_request *cr, struct api_response *resp)
{
	struct sandbox_info info;
	struct ember_error *err = NULL;

	if (e2b_parse_pause(cr->req->body, cr->req->body_len, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (get_live(cr, &info, resp) < 0)
		return;
	if (shown_paused(&info) || info.state == SANDBOX_PAUSING) {
		e2b_error_rest_msg(resp, 409, "sandbox is already paused");
		return;
	}
	if (manager_pause(manager_of(cr), cr->id, &info, &err) < 0) {
		respond_pause_refused(cr, &err, resp);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

/* Resumes the paused sandbox info names and refills info. A concurrent connect that resumed it
 * first is no error: it runs, as the caller wants. */
static int resume_paused(const struct control_request *cr, const struct e2b_resume_body *body,
			 struct sandbox_info *info, struct api_response *resp)
{
	struct ember_error *err = NULL;

	if (body->reboot) {
		e2b_error_rest_msg(resp, 400,
				   "field `memory`: emberd resumes a paused sandbox with its memory "
				   "only (onResume `reboot` is not supported)");
		return -1;
	}
	if (manager_resume(manager_of(cr), cr->id, info, &err) == 0)
		return 0;
	if (err->kind != EMBER_E_CONFLICT) {
		respond_err(resp, &err);
		return -1;
	}
	if (get_live(cr, info, resp) < 0) {
		ember_error_free(&err);
		return -1;
	}
	if (info->state == SANDBOX_READY) {
		ember_error_free(&err);
		return 0;
	}
	respond_err(resp, &err);
	return -1;
}

/* E2B's connect resumes a paused sandbox (201; 200 for a running one) and only ever extends the
 * lifetime: to timeout (300 s when v2 names none) from now, when that is later than the
 * sandbox's end (a resumed one's is the resume plus the lifetime it had left). Extending by the
 * default is best effort (beyond --max-timeout-s, or while the sandbox boots, it stays as it
 * is); a timeout the client named that cannot be set is its error. */
static void handle_connect(const struct control_request *cr, struct api_response *resp)
{
	struct e2b_resume_body body;
	struct sandbox_info info;
	struct ember_error *err = NULL;
	unsigned timeout_s, status = 200;
	bool named;

	if (e2b_parse_connect(cr->req->body, cr->req->body_len, &body, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (get_live(cr, &info, resp) < 0)
		return;
	if (info.state == SANDBOX_PAUSED) {
		if (resume_paused(cr, &body, &info, resp) < 0)
			return;
		status = 201;
	}
	named = body.timeout_s != 0;
	timeout_s = named ? body.timeout_s : 300;
	if (time_wall_ns() + (int64_t)timeout_s * 1000000000 > info.expires_wall_ns &&
	    manager_set_timeout(manager_of(cr), cr->id, timeout_s, &info, &err) < 0) {
		if (named) {
			respond_err(resp, &err);
			return;
		}
		ember_error_free(&err);
	}
	respond_json(resp, status, sandbox_json(cr, &info));
}

/* The deprecated resume: 201, 409 for a sandbox that is not paused; its lifetime is then set to
 * timeout, E2B's default 15 s when the body names none. */
static void handle_resume(const struct control_request *cr, struct api_response *resp)
{
	struct e2b_resume_body body;
	struct sandbox_info info;
	struct ember_error *err = NULL;

	if (e2b_parse_resume(cr->req->body, cr->req->body_len, &body, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (get_live(cr, &info, resp) < 0)
		return;
	if (info.state != SANDBOX_PAUSED) {
		e2b_error_rest_msg(resp, 409, "sandbox is not paused");
		return;
	}
	if (resume_paused(cr, &body, &info, resp) < 0)
		return;
	if (manager_set_timeout(manager_of(cr), cr->id, body.timeout_s != 0 ? body.timeout_s : 15,
				&info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, sandbox_json(cr, &info));
}

/* ---- list ---- */

struct list_order {
	bool ascending;
};

static int compare_started(const struct sandbox_info *a, const struct sandbox_info *b)
{
	if (a->created_wall_ns != b->created_wall_ns)
		return a->created_wall_ns < b->created_wall_ns ? -1 : 1;
	return strcmp(a->id, b->id);
}

static int compare_asc(const void *a, const void *b)
{
	return compare_started(a, b);
}

static int compare_desc(const void *a, const void *b)
{
	return compare_started(b, a);
}

static bool list_match(const struct e2b_list_query *q, const struct sandbox_info *info)
{
	if (info->state == SANDBOX_DESTROYING || info->state == SANDBOX_GONE ||
	    !(shown_paused(info) ? q->paused : q->running))
		return false;
	if (q->has_started_after && info->created_wall_ns < q->started_after_ns)
		return false;
	if (q->template_id[0] != '\0' && strcmp(q->template_id, template_of(info)) != 0 &&
	    strcmp(q->template_id, info->language_pack) != 0)
		return false;
	if (q->has_next) {
		struct sandbox_info cursor = { .created_wall_ns = q->next_created_ns };
		int c;

		memcpy(cursor.id, q->next_id, sizeof(cursor.id));
		c = compare_started(info, &cursor);
		if (q->ascending ? c <= 0 : c >= 0)
			return false;
	}
	return sandbox_labels_match(&info->labels, q->terms, q->nterms);
}

/* O(n log n) in the sandboxes: a sort of the manager's snapshot per page, cheaper than the
 * JSON of the page itself at the sizes one host holds. */
static void list(const struct control_request *cr, bool v2, struct api_response *resp)
{
	_cleanup_free_ struct sandbox_info *infos = NULL;
	_cleanup_free_ struct e2b_list_query *q = malloc(sizeof(*q));
	struct ember_error *err = NULL;
	size_t count = 0, i, shown = 0;
	json_t *arr;

	if (q == NULL) {
		e2b_error_rest(resp, NULL);
		return;
	}
	if (e2b_parse_list_query(cr->req->query, v2, q, &err) < 0 ||
	    manager_list(manager_of(cr), &infos, &count, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (count > 1)
		qsort(infos, count, sizeof(*infos), q->ascending ? compare_asc : compare_desc);
	arr = json_array();
	for (i = 0; arr != NULL && i < count; i++) {
		if (!list_match(q, &infos[i]))
			continue;
		if (q->limit != 0 && shown == q->limit) {
			/* more follow: the page ends with the one shown last */
			e2b_next_token(infos[i - 1].created_wall_ns, infos[i - 1].id,
				       resp->e2b_next_token);
			break;
		}
		json_array_append_new(arr, listed_json(cr, &infos[i], false));
		shown++;
	}
	respond_json(resp, 200, arr);
}

static void handle_list_v1(const struct control_request *cr, struct api_response *resp)
{
	list(cr, false, resp);
}

static void handle_list_v2(const struct control_request *cr, struct api_response *resp)
{
	list(cr, true, resp);
}

/* ---- forks and snapshots ---- */

/* E2B's fork answers 201 with one {sandbox} or {error} per fork. emberd's forks are all or
 * nothing, so a failure is the answer's status (E2B's "failed before any fork was attempted"),
 * never an entry's error. Labels (the metadata and template) are the source's. */
static void handle_fork(const struct control_request *cr, struct api_response *resp)
{
	_cleanup_free_ struct sandbox_info *infos = NULL;
	struct ember_error *err = NULL;
	unsigned count, timeout_s, i;
	json_t *arr;

	if (e2b_parse_fork(cr->req->body, cr->req->body_len, &count, &timeout_s, &err) < 0 ||
	    manager_fork(manager_of(cr), cr->id, count, NULL, timeout_s, &infos, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	arr = json_array();
	for (i = 0; arr != NULL && i < count; i++) {
		json_t *sb = sandbox_json(cr, &infos[i]);

		if (sb == NULL || json_array_append_new(arr, json_pack("{s:o}", "sandbox", sb)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	respond_json(resp, 201, arr);
}

/* SnapshotInfo: emberd's id (what a create takes as templateID) and the name, if any. */
static json_t *snapshot_json(const struct snapshot_info *info)
{
	const char *name = sandbox_labels_get(&info->labels, E2B_SNAPSHOT_NAME_LABEL);
	json_t *names = json_array();

	if (names != NULL && name != NULL && json_array_append_new(names, json_string(name)) < 0) {
		json_decref(names);
		return NULL;
	}
	return names == NULL ? NULL : json_pack("{s:s, s:o}", "snapshotID", info->id, "names", names);
}

static void handle_snapshot_create(const struct control_request *cr, struct api_response *resp)
{
	_cleanup_free_ struct snapshot_info *info = calloc(1, sizeof(*info));
	_cleanup_free_ struct sandbox_labels *labels = calloc(1, sizeof(*labels));
	struct ember_error *err = NULL;
	char name[SANDBOX_LABEL_VALUE_MAX + 1];

	if (info == NULL || labels == NULL) {
		e2b_error_rest(resp, NULL);
		return;
	}
	if (e2b_parse_snapshot(cr->req->body, cr->req->body_len, name, &err) < 0 ||
	    (name[0] != '\0' && sandbox_labels_add(labels, E2B_SNAPSHOT_NAME_LABEL, name,
						   strlen(name), &err) < 0) ||
	    manager_snapshot_create(manager_of(cr), cr->id, labels, info, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	respond_json(resp, 201, snapshot_json(info));
}

static int compare_snapshots(const void *a, const void *b)
{
	const struct snapshot_info *x = a, *y = b;

	if (x->created_wall_ns != y->created_wall_ns)
		return x->created_wall_ns < y->created_wall_ns ? -1 : 1;
	return strcmp(x->id, y->id);
}

static bool snapshot_match(const struct e2b_snapshot_query *q, const struct snapshot_info *info)
{
	const char *name = sandbox_labels_get(&info->labels, E2B_SNAPSHOT_NAME_LABEL);

	if (q->sandbox_id[0] != '\0' && strcmp(q->sandbox_id, info->sandbox_id) != 0)
		return false;
	if (q->name[0] != '\0' && strcmp(q->name, info->id) != 0 &&
	    (name == NULL || strcmp(q->name, name) != 0))
		return false;
	if (q->has_next) {
		struct snapshot_info cursor = { .created_wall_ns = q->next_created_ns };

		snprintf(cursor.id, sizeof(cursor.id), "%s", q->next_id);
		return compare_snapshots(info, &cursor) > 0;
	}
	return true;
}

/* Oldest first, pages through X-Next-Token like the sandbox list. */
static void handle_snapshots(const struct control_request *cr, struct api_response *resp)
{
	_cleanup_free_ struct snapshot_info *infos = NULL;
	_cleanup_free_ struct e2b_snapshot_query *q = malloc(sizeof(*q));
	struct ember_error *err = NULL;
	size_t count = 0, i, shown = 0;
	json_t *arr;

	if (q == NULL) {
		e2b_error_rest(resp, NULL);
		return;
	}
	if (e2b_parse_snapshot_query(cr->req->query, q, &err) < 0 ||
	    manager_snapshot_list(manager_of(cr), &infos, &count, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	if (count > 1)
		qsort(infos, count, sizeof(*infos), compare_snapshots);
	arr = json_array();
	for (i = 0; arr != NULL && i < count; i++) {
		if (!snapshot_match(q, &infos[i]))
			continue;
		if (q->limit != 0 && shown == q->limit) {
			e2b_next_token(infos[i - 1].created_wall_ns, infos[i - 1].id,
				       resp->e2b_next_token);
			break;
		}
		json_array_append_new(arr, snapshot_json(&infos[i]));
		shown++;
	}
	respond_json(resp, 200, arr);
}

#define NO_TEMPLATES                                                                          \
	"building templates is not supported: emberd's templates are its packs (docs/images.md)"

/* The SDK's deleteSnapshot is DELETE /templates/{snapshot id}: 204, 404 (false) for none. */
static void handle_template_delete(const struct control_request *cr, struct api_response *resp)
{
	const char *id = cr->req->path + strlen("/templates/");
	struct ember_error *err = NULL;

	if (strncmp(id, SNAPSHOT_ID_PREFIX, strlen(SNAPSHOT_ID_PREFIX)) != 0) {
		e2b_error_rest_msg(resp, 501, NO_TEMPLATES);
		return;
	}
	if (manager_snapshot_delete(manager_of(cr), id, &err) < 0) {
		respond_err(resp, &err);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

/* ---- the table ---- */


static const struct control_route routes[] = {
	{ "POST", "/sandboxes", handle_create, NULL },
	{ "GET", "/sandboxes", handle_list_v1, NULL },
	{ "POST", "/v2/sandboxes", handle_create, NULL },
	{ "GET", "/v2/sandboxes", handle_list_v2, NULL },
	{ "GET", "/sandboxes/{id}", handle_get, NULL },
	{ "DELETE", "/sandboxes/{id}", handle_delete, NULL },
	{ "POST", "/sandboxes/{id}/timeout", handle_timeout, NULL },
	{ "POST", "/sandboxes/{id}/connect", handle_connect, NULL },
	{ "POST", "/v2/sandboxes/{id}/connect", handle_connect, NULL },
	{ "POST", "/sandboxes/{id}/pause", handle_pause, NULL },
	{ "POST", "/sandboxes/{id}/resume", handle_resume, NULL },
	{ "POST", "/sandboxes/{id}/fork", handle_fork, NULL },
	{ "POST", "/sandboxes/{id}/snapshots", handle_snapshot_create, NULL },
	{ "GET", "/snapshots", handle_snapshots, NULL },
	{ "DELETE", "/templates/*", handle_template_delete, NULL },
	{ "PUT", "/sandboxes/{id}/network", NULL,
	  "network updates are not mapped to E2B's API: use emberd's PATCH "
	  "/sandboxes/{id}/network (docs/api.md)" },
	{ "GET", "/sandboxes/{id}/metrics", NULL,
	  "sandbox metrics are not supported by emberd's E2B API (emberd's own are at GET "
	  "/metrics)" },
	{ "GET", "/sandboxes/metrics", NULL,
	  "sandbox metrics are not supported by emberd's E2B API (emberd's own are at GET "
	  "/metrics)" },
	{ "GET", "/sandboxes/{id}/logs", NULL,
	  "sandbox logs are not supported by emberd's E2B API (emberd's GET "
	  "/sandboxes/{id}/console has the guest console)" },
	{ "GET", "/v2/sandboxes/{id}/logs", NULL,
	  "sandbox logs are not supported by emberd's E2B API (emberd's GET "
	  "/sandboxes/{id}/console has the guest console)" },
	{ "*", "/templates/*", NULL, NO_TEMPLATES },
	{ "*", "/v2/templates/*", NULL, NO_TEMPLATES },
	{ "*", "/v3/templates/*", NULL, NO_TEMPLATES },
	{ "*", "/volumes/*", NULL, "volumes are not supported by emberd" },
	{ "*", "/secrets/*", NULL, "secrets are not supported by emberd" },
};

enum match {
	MATCH_NONE,
	MATCH_PATH,   /* the path matches, the method does not */
	MATCH_FULL,
};

/* Segment by segment; the {id} segment is copied (up to 64 bytes: longer is no id anyway). */
static enum match match_route(const struct control_route *r, const char *method,
			      const char *path, char *id, size_t id_size)
{
	const char *p = r->pattern, *s = path;

	while (*p != '\0') {
		size_t plen, slen;

		if (*p != '/' || *s != '/')
			return MATCH_NONE;
		p++, s++;
		if (strcmp(p, "*") == 0)
			break;
		plen = strcspn(p, "/");
		slen = strcspn(s, "/");
		if (plen == 4 && strncmp(p, "{id}", 4) == 0) {
			if (slen == 0)
				return MATCH_NONE;
			snprintf(id, id_size, "%.*s", (int)slen, s);
		} else if (plen != slen || strncmp(p, s, plen) != 0) {
			return MATCH_NONE;
		}
		p += plen, s += slen;
	}
	if (*p == '\0' && *s != '\0')
		return MATCH_NONE;
	if (strcmp(r->method, "*") != 0 && strcmp(r->method, method) != 0)
		return MATCH_PATH;
	return MATCH_FULL;
}

/* 501 for a call emberd knows and does not serve; a sandbox it names must exist first, so a
 * gone sandbox is still the SDK's SandboxNotFoundError. */
static void respond_unsupported(const struct control_request *cr, const char *why,
				struct api_response *resp)
{
	struct sandbox_info info;

	if (cr->id != NULL && get_live(cr, &info, resp) < 0)
		return;
	e2b_error_rest_msg(resp, 501, why);
}

void e2b_control_route(const struct e2b_context *ctx, const struct e2b_request *req,
		       struct api_response *resp)
{
	char id[65] = "", shown[96];
	bool path_known = false;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(routes); i++) {
		const struct control_route *r = &routes[i];
		struct control_request cr = { .ctx = ctx, .req = req };
		enum match m = match_route(r, req->method, req->path, id, sizeof(id));

		if (m == MATCH_PATH)
			path_known = true;
		if (m != MATCH_FULL)
			continue;
		if (strstr(r->pattern, "{id}") != NULL) {
			/* any other text cannot name a sandbox: E2B's 404 */
			if (!api_valid_sandbox_id(id)) {
				e2b_error_rest_msg(resp, 404, "sandbox not found");
				return;
			}
			cr.id = id;
		}
		if (r->handler == NULL)
			respond_unsupported(&cr, r->unsupported, resp);
		else
			r->handler(&cr, resp);
		return;
	}
	text_escape_log(req->path, shown, sizeof(shown));
	if (path_known) {
		e2b_error_rest_msg(resp, 405, "method not allowed here");
		return;
	}
	char msg[200];

	snprintf(msg, sizeof(msg), "no E2B API call %s %s in emberd (docs/e2b.md)", req->method,
		 shown);
	e2b_error_rest_msg(resp, 404, msg);
}
