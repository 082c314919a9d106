/* mcp.c - MCP over Streamable HTTP (2025-06-18 and 2025-11-25): one JSON-RPC message per POST
 * answered with one JSON body (never an SSE stream), sessions in a locked table, a thread that
 * ends idle ones. The table is O(MCP_SESSIONS_MAX) to search: 64 string compares, nothing next
 * to the tool call that follows. */
#include "api/mcp.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/mcptools.h"
#include "util/cleanup.h"
#include "util/ids.h"
#include "util/jsonutil.h"
#include "util/log.h"
#include "util/sync.h"
#include "util/text.h"
#include "util/timeutil.h"

/* JSON-RPC 2.0's codes, and the two the MCP SDKs use for transport-level refusals. */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603
#define RPC_BAD_REQUEST -32000
#define RPC_SESSION_NOT_FOUND -32001

struct mcp_session {
	char id[MCP_SESSION_ID_MAX + 1];
	char version[16];            /* the negotiated protocol revision */
	int64_t last_used_ms;        /* monotonic; the end of the last request */
	unsigned refs;               /* the table's (while listed) and each request's */
	bool listed;
	struct mcp_workspace ws;
};

struct mcp_server {
	struct manager *m;
	int64_t idle_ms;
	int64_t evict_ms;            /* MCP_EVICT_IDLE_MS, or half the idle timeout when shorter */
	pthread_mutex_t lock;        /* sessions[], each session's refs/listed/last_used_ms */
	pthread_cond_t wake;         /* stop */
	bool stop;
	bool thread_started;
	pthread_t reaper;
	struct mcp_session *sessions[MCP_SESSIONS_MAX];
};

static const char *const versions[] = { MCP_PROTOCOL_LATEST, MCP_PROTOCOL_PREVIOUS };
/* Every published revision: an MCP-Protocol-Version header naming one of them is taken (the
 * session keeps the revision it negotiated; clients and the conformance suite send older
 * ones), anything else is 400 as the transport says. */
static const char *const known_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26",
					      "2024-11-05" };

static bool version_known(const char *v)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(known_versions); i++) {
		if (strcmp(v, known_versions[i]) == 0)
			return true;
	}
	return false;
}

static bool version_supported(const char *v)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(versions); i++) {
		if (strcmp(v, versions[i]) == 0)
			return true;
	}
	return false;
}

/* --- sessions --- */

static void session_free(struct mcp_session *s)
{
	mcp_workspace_destroy(&s->ws);
	free(s);
}

/* Drops a reference (lock held by the caller: no); frees the session with the last one. */
static void session_unref(struct mcp_server *srv, struct mcp_session *s)
{
	bool last;

	pthread_mutex_lock(&srv->lock);
	s->last_used_ms = time_mono_ms();
	last = --s->refs == 0;
	pthread_mutex_unlock(&srv->lock);
	if (last)
		session_free(s);
}

static bool session_unlist_locked(struct mcp_server *srv, struct mcp_session *s);
static void session_end(struct mcp_server *srv, struct mcp_session *s, const char *why);

/* With the table full, the least recently used session that owns no sandbox, has no request
 * in flight and has not been used for evict_ms (lock held): clients that never end
 * their sessions (many SDKs only close the connection) must not lock everyone out for the
 * whole idle timeout, and a session that owns sandboxes keeps them until it idles out. */
static struct mcp_session *evictable_locked(struct mcp_server *srv, int64_t now)
{
	struct mcp_session *victim = NULL;
	size_t i;

	for (i = 0; i < MCP_SESSIONS_MAX; i++) {
		struct mcp_session *s = srv->sessions[i];
		bool owns;

		if (s == NULL || s->refs != 1 || now - s->last_used_ms < srv->evict_ms ||
		    (victim != NULL && s->last_used_ms >= victim->last_used_ms))
			continue;
		pthread_mutex_lock(&s->ws.lock);
		owns = s->ws.nowned > 0;
		pthread_mutex_unlock(&s->ws.lock);
		if (!owns)
			victim = s;
	}
	return victim;
}

/* A new listed session, with a reference for the caller; NULL (and 429) when the table is full
 * and no session can be evicted. */
static struct mcp_session *session_new(struct mcp_server *srv, const char *version,
				       struct ember_error **err)
{
	struct mcp_session *s = calloc(1, sizeof(*s)), *evicted = NULL;
	size_t i;

	if (s == NULL) {
		ember_error_oom(err);
		return NULL;
	}
	if (id_generate("mcp_", s->id, sizeof(s->id), err) < 0) {
		free(s);
		return NULL;
	}
	snprintf(s->version, sizeof(s->version), "%s", version);
	mcp_workspace_init(&s->ws, s->id);
	s->refs = 2;
	s->listed = true;
	s->last_used_ms = time_mono_ms();
	pthread_mutex_lock(&srv->lock);
	for (i = 0; i < MCP_SESSIONS_MAX && srv->sessions[i] != NULL; i++)
		;
	if (srv->stop) {
		pthread_mutex_unlock(&srv->lock);
		session_free(s);
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "the daemon is shutting down");
		return NULL;
	}
	if (i == MCP_SESSIONS_MAX && (evicted = evictable_locked(srv, s->last_used_ms)) != NULL) {
		session_unlist_locked(srv, evicted);
		for (i = 0; i < MCP_SESSIONS_MAX && srv->sessions[i] != NULL; i++)
			;
	}
	if (i < MCP_SESSIONS_MAX)
		srv->sessions[i] = s;
	pthread_mutex_unlock(&srv->lock);
	if (evicted != NULL)
		session_end(srv, evicted, "evicted");
	if (i == MCP_SESSIONS_MAX) {
		session_free(s);
		ember_error_set(err, EMBER_E_CAPACITY, 0,
				"%u MCP sessions are open already, none idle for %lld s without "
				"sandboxes: end one (DELETE /mcp) or wait for one to idle out",
				MCP_SESSIONS_MAX, (long long)(srv->evict_ms / 1000));
		ember_error_retry_after(err, 60);
		return NULL;
	}
	return s;
}

/* The listed session of that id, with a reference; NULL when unknown or ended. */
static struct mcp_session *session_get(struct mcp_server *srv, const char *id)
{
	struct mcp_session *s = NULL;
	size_t i;

	pthread_mutex_lock(&srv->lock);
	for (i = 0; i < MCP_SESSIONS_MAX; i++) {
		if (srv->sessions[i] != NULL && strcmp(srv->sessions[i]->id, id) == 0) {
			s = srv->sessions[i];
			s->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return s;
}

/* Takes s out of the table (lock held); false when it was out already. */
static bool session_unlist_locked(struct mcp_server *srv, struct mcp_session *s)
{
	size_t i;

	if (!s->listed)
		return false;
	for (i = 0; i < MCP_SESSIONS_MAX; i++) {
		if (srv->sessions[i] == s)
			srv->sessions[i] = NULL;
	}
	s->listed = false;
	return true;
}

/* Ends a session that was unlisted: its sandboxes go, then the table's reference. */
static void session_end(struct mcp_server *srv, struct mcp_session *s, const char *why)
{
	log_event(LOG_INFO, NULL, "mcp.session_end", -1, "session=%s reason=%s", s->id, why);
	mcp_workspace_end(&s->ws, srv->m);
	session_unref(srv, s);
}

/* Ends sessions idle past idle_ms (none with a request in flight: refs 1 is the table's). */
static void *reaper_main(void *arg)
{
	struct mcp_server *srv = arg;
	struct mcp_session *expired[MCP_SESSIONS_MAX];
	size_t i, n;

	pthread_mutex_lock(&srv->lock);
	while (!srv->stop) {
		int64_t now = time_mono_ms();

		n = 0;
		for (i = 0; i < MCP_SESSIONS_MAX; i++) {
			struct mcp_session *s = srv->sessions[i];

			if (s != NULL && s->refs == 1 && now - s->last_used_ms >= srv->idle_ms &&
			    session_unlist_locked(srv, s))
				expired[n++] = s;
		}
		if (n > 0) {
			pthread_mutex_unlock(&srv->lock);
			for (i = 0; i < n; i++)
				session_end(srv, expired[i], "idle");
			pthread_mutex_lock(&srv->lock);
			continue;
		}
		/* A second's granularity: an idle timeout is minutes, a late end costs nothing. */
		cond_wait_until(&srv->wake, &srv->lock, now + 1000);
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

int mcp_server_new(struct manager *m, unsigned idle_s, struct mcp_server **out,
		   struct ember_error **err)
{
	struct mcp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return ember_error_oom(err);
	srv->m = m;
	srv->idle_ms = (int64_t)(idle_s != 0 ? idle_s : MCP_SESSION_IDLE_S) * 1000;
	srv->evict_ms = srv->idle_ms / 2 < MCP_EVICT_IDLE_MS ? srv->idle_ms / 2 : MCP_EVICT_IDLE_MS;
	pthread_mutex_init(&srv->lock, NULL);
	cond_init_monotonic(&srv->wake);
	if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) {
		errno = EAGAIN;
		mcp_server_free(srv);
		return ember_error_sys(err, "start the MCP session reaper");
	}
	srv->thread_started = true;
	*out = srv;
	return 0;
}

void mcp_server_stop(struct mcp_server *srv)
{
	struct mcp_session *s;
	size_t i;

	pthread_mutex_lock(&srv->lock);
	srv->stop = true;
	pthread_cond_broadcast(&srv->wake);
	pthread_mutex_unlock(&srv->lock);
	if (srv->thread_started)
		pthread_join(srv->reaper, NULL);
	srv->thread_started = false;
	for (i = 0; i < MCP_SESSIONS_MAX; i++) {
		pthread_mutex_lock(&srv->lock);
		s = srv->sessions[i];
		if (s != NULL)
			session_unlist_locked(srv, s);
		pthread_mutex_unlock(&srv->lock);
		if (s != NULL)
			session_end(srv, s, "shutdown");
	}
}

void mcp_server_free(struct mcp_server *srv)
{
	if (srv == NULL)
		return;
	mcp_server_stop(srv);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->wake);
	free(srv);
}

/* --- JSON-RPC --- */

static json_t *rpc_error(json_t *id, int code, const char *message)
{
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
			 id != NULL ? id : json_null(), "error", "code", code, "message", message);
}

static void respond_rpc_error(struct api_response *resp, unsigned status, json_t *id, int code,
			      const char *message)
{
	resp->status = status;
	resp->body = rpc_error(id, code, message);
	if (resp->body == NULL)
		api_response_error(resp, NULL);
}

static void respond_result(struct api_response *resp, json_t *id, json_t *result)
{
	if (result == NULL) {
		respond_rpc_error(resp, 200, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	resp->status = 200;
	resp->body = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
	if (resp->body == NULL)
		api_response_error(resp, NULL);
}

/* initialize: a new session speaking the client's revision when this server has it, else the
 * newest; the session id goes out in the Mcp-Session-Id header. */
static void handle_initialize(struct mcp_server *srv, json_t *id, json_t *params,
			      struct api_response *resp)
{
	const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
	struct ember_error *err = NULL;
	struct mcp_session *s;
	const char *version;
	json_t *result;

	if (asked == NULL) {
		respond_rpc_error(resp, 200, id, RPC_INVALID_PARAMS,
				  "initialize needs params.protocolVersion (a string)");
		return;
	}
	version = version_supported(asked) ? asked : MCP_PROTOCOL_LATEST;
	s = session_new(srv, version, &err);
	if (s == NULL) {
		unsigned status = api_status_for(err->kind);

		resp->retry_after_s = err->retry_after_s;
		respond_rpc_error(resp, status, id, RPC_BAD_REQUEST, err->message);
		ember_error_free(&err);
		return;
	}
	result = json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion",
			   version, "capabilities", "tools", "listChanged", 0, "serverInfo", "name",
			   "emberd", "title", "emberd sandboxes", "version", EMBER_VERSION,
			   "instructions",
			   "Run code in microVM sandboxes. run_code keeps a live interpreter per "
			   "language for this session (variables persist); the other tools work on "
			   "any sandbox, by default the session's. Sandboxes this session makes are "
			   "deleted when it ends.");
	snprintf(resp->mcp_session_id, sizeof(resp->mcp_session_id), "%s", s->id);
	log_event(LOG_INFO, NULL, "mcp.session_start", -1, "session=%s version=%s", s->id,
		  version);
	session_unref(srv, s);
	respond_result(resp, id, result);
}

static void handle_tools_call(struct mcp_server *srv, struct mcp_session *s, json_t *id,
			      json_t *params, struct api_response *resp)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *arguments = json_object_get(params, "arguments");
	char msg[128], shown[72];

	if (name == NULL) {
		respond_rpc_error(resp, 200, id, RPC_INVALID_PARAMS,
				  "tools/call needs params.name (a string)");
		return;
	}
	if (!mcp_tool_exists(name)) {
		text_escape_log(name, shown, sizeof(shown));
		snprintf(msg, sizeof(msg), "Unknown tool: %s", shown);
		respond_rpc_error(resp, 200, id, RPC_INVALID_PARAMS, msg);
		return;
	}
	if (arguments != NULL && !json_is_object(arguments) && !json_is_null(arguments)) {
		respond_rpc_error(resp, 200, id, RPC_INVALID_PARAMS,
				  "params.arguments must be an object");
		return;
	}
	respond_result(resp, id,
		       mcp_tools_call(srv->m, &s->ws, name,
				      json_is_object(arguments) ? arguments : NULL));
}

/* A request within a session. */
static void dispatch(struct mcp_server *srv, struct mcp_session *s, const char *method,
		     json_t *id, json_t *params, struct api_response *resp)
{
	char msg[128], shown[72];

	if (strcmp(method, "ping") == 0) {
		respond_result(resp, id, json_object());
	} else if (strcmp(method, "tools/list") == 0) {
		json_t *tools = mcp_tools_list();

		respond_result(resp, id, tools != NULL ? json_pack("{s:o}", "tools", tools) : NULL);
	} else if (strcmp(method, "tools/call") == 0) {
		handle_tools_call(srv, s, id, params, resp);
	} else {
		text_escape_log(method, shown, sizeof(shown));
		snprintf(msg, sizeof(msg), "Method not found: %s", shown);
		respond_rpc_error(resp, 200, id, RPC_METHOD_NOT_FOUND, msg);
	}
}

/* The session a request names: 400 without one, 404 for one that is unknown or ended, 400 for
 * an MCP-Protocol-Version that names no MCP revision. NULL when it answered. */
static struct mcp_session *request_session(struct mcp_server *srv,
					   const struct mcp_http_request *req, json_t *id,
					   struct api_response *resp)
{
	struct mcp_session *s;
	char msg[160], shown[40];

	if (req->session_id == NULL || req->session_id[0] == '\0') {
		respond_rpc_error(resp, 400, id, RPC_BAD_REQUEST,
				  "Bad Request: Mcp-Session-Id header is required (initialize first)");
		return NULL;
	}
	s = strlen(req->session_id) <= MCP_SESSION_ID_MAX ? session_get(srv, req->session_id)
							   : NULL;
	if (s == NULL) {
		respond_rpc_error(resp, 404, id, RPC_SESSION_NOT_FOUND,
				  "Session not found (it ended or timed out): initialize again");
		return NULL;
	}
	if (req->protocol_version != NULL && !version_known(req->protocol_version)) {
		text_escape_log(req->protocol_version, shown, sizeof(shown));
		snprintf(msg, sizeof(msg),
			 "Bad Request: unsupported MCP-Protocol-Version `%s` (this session "
			 "speaks %s)", shown, s->version);
		session_unref(srv, s);
		respond_rpc_error(resp, 400, id, RPC_BAD_REQUEST, msg);
		return NULL;
	}
	return s;
}

/* An id is a string or a number (MCP: never null). */
static bool valid_id(json_t *id)
{
	return json_is_string(id) || json_is_integer(id) || json_is_real(id);
}

static void handle_post(struct mcp_server *srv, const struct mcp_http_request *req,
			struct api_response *resp)
{
	_cleanup_json_ json_t *msg = NULL;
	struct mcp_session *s;
	json_error_t jerr;
	const char *method;
	json_t *id, *params;

	msg = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (msg == NULL) {
		respond_rpc_error(resp, 400, NULL, RPC_PARSE_ERROR, "Parse error: not JSON");
		return;
	}
	if (json_is_array(msg)) {
		/* Batches left the protocol with 2025-06-18, and this server speaks no older one. */
		respond_rpc_error(resp, 400, NULL, RPC_INVALID_REQUEST,
				  "Invalid Request: JSON-RPC batches are not supported by MCP "
				  "2025-06-18 and later; send one message per POST");
		return;
	}
	id = json_object_get(msg, "id");
	method = json_string_value(json_object_get(msg, "method"));
	if (!json_is_object(msg) ||
	    json_string_value(json_object_get(msg, "jsonrpc")) == NULL ||
	    strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") != 0 ||
	    (id != NULL && !valid_id(id)) ||
	    (method == NULL && (id == NULL || (json_object_get(msg, "result") == NULL &&
					       json_object_get(msg, "error") == NULL)))) {
		respond_rpc_error(resp, 400, valid_id(id) ? id : NULL, RPC_INVALID_REQUEST,
				  "Invalid Request: not a JSON-RPC 2.0 request, notification or "
				  "response");
		return;
	}
	params = json_object_get(msg, "params");
	if (params != NULL && !json_is_object(params)) {
		respond_rpc_error(resp, 400, id, RPC_INVALID_PARAMS, "params must be an object");
		return;
	}
	if (method != NULL && id != NULL && strcmp(method, "initialize") == 0) {
		handle_initialize(srv, id, params, resp);
		return;
	}
	s = request_session(srv, req, id, resp);
	if (s == NULL)
		return;
	if (method == NULL || id == NULL) {
		/* A notification (notifications/initialized, .../cancelled) or a response: nothing
		 * to answer (this server sends no requests, and tool calls are not cancelled). */
		resp->status = 202;
	} else {
		dispatch(srv, s, method, id, params, resp);
	}
	session_unref(srv, s);
}

static void handle_delete(struct mcp_server *srv, const struct mcp_http_request *req,
			  struct api_response *resp)
{
	struct mcp_session *s = request_session(srv, req, NULL, resp);
	bool unlisted;

	if (s == NULL)
		return;
	pthread_mutex_lock(&srv->lock);
	unlisted = session_unlist_locked(srv, s);
	pthread_mutex_unlock(&srv->lock);
	if (unlisted)
		session_end(srv, s, "deleted");
	session_unref(srv, s);
	resp->status = 204;
}

void mcp_handle(struct mcp_server *srv, const struct mcp_http_request *req,
		struct api_response *resp)
{
	if (strcmp(req->method, "DELETE") == 0)
		handle_delete(srv, req, resp);
	else
		handle_post(srv, req, resp);
}
