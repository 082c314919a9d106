/* server.c - libmicrohttpd glue: listening sockets, bounded body collection, responses.
 * Routing and every status/body decision live in routes.c; this file only moves bytes. */
#include "api/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/deadline.h"
#include "api/encode.h"
#include "api/guard.h"
#include "api/routes.h"
#include "e2b/e2b.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/timeutil.h"

struct api_server;

/* One per listening socket: what its requests need to know about where they came from. */
struct api_listener {
	struct api_server *server;
	bool is_unix;          /* the owner-only Unix socket: no Host/Origin/token checks */
	bool is_e2b;           /* --e2b-addr: requests go to e2b_route() (e2b/e2b.h) */
	const struct api_guard *guard; /* TCP: the checks of this listener's address */
	struct MHD_Daemon *mhd;
};

struct api_server {
	struct api_listener tcp;
	struct api_listener unix_socket;
	struct api_listener e2b;
	char unix_path[108];
	unsigned port;
	unsigned e2b_port;
	struct api_guard e2b_guard;
	struct e2b_context e2b_ctx;
	size_t max_body;
	unsigned connection_timeout_s;
	struct api_guard guard;
	struct deadline_registry *deadlines; /* TCP connections only */
	struct api_context *ctx;
};

struct request_state {
	struct buf body;
	uint64_t received;       /* body bytes seen, kept or dropped */
	bool too_large;          /* past the cap: the rest is dropped, the answer is 413 */
	bool answered;           /* a response is queued before the body's end (the guard's, or a
				  * 413 for a body past API_BODY_DISCARD_MAX): the rest is dropped */
	struct api_upload *upload; /* a file upload: the body streams to the guest, uncapped */
	struct e2b_upload *e2b_upload; /* the same on the E2B listener (POST /files) */
	int64_t started_us;
};

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
	size_t n = api_stream_read(cls, pos, buf, max);

	return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void free_stream(void *cls)
{
	api_stream_free(cls);
}

/* A streamed body: the library reads it in 64 KiB pieces and frees it when done. */
static struct MHD_Response *stream_response(struct api_response *r)
{
	struct MHD_Response *response = MHD_create_response_from_callback(
		api_stream_length(r->stream), 64 * 1024, read_stream, r->stream, free_stream);

	if (response != NULL)
		r->stream = NULL; /* the library owns it now */
	return response;
}

static ssize_t read_download(void *cls, uint64_t pos, char *buf, size_t max)
{
	ssize_t n = api_download_read(cls, buf, max);

	(void)pos;
	if (n > 0)
		return n;
	return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void free_download(void *cls)
{
	api_download_free(cls);
}

/* A file's bytes (GET /files): its length up front, read from the guest as the client takes
 * them (64 KiB at a time: the library's buffer). A transfer that fails midway cuts the
 * connection, so the client sees fewer bytes than Content-Length, never a wrong file. */
static struct MHD_Response *download_response(struct api_response *r)
{
	struct MHD_Response *response = MHD_create_response_from_callback(
		api_download_size(r->download), 64 * 1024, read_download, r->download,
		free_download);

	if (response == NULL)
		return NULL;
	r->download = NULL; /* the library owns it now */
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/octet-stream");
	return response;
}

/* A streamed exec's body and the connection it goes out on. */
struct events_body {
	struct api_exec_stream *stream;
	struct MHD_Connection *conn;
	unsigned idle_timeout_s;   /* restored once the last event is out */
	bool restored;
};

static ssize_t read_events(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct events_body *b = cls;
	ssize_t n = api_exec_stream_read(b->stream, buf, max);

	(void)pos;
	if (!b->restored && api_exec_stream_ended(b->stream)) {
		/* The exec is over: a client that stops reading now is merely idle. */
		MHD_set_connection_option(b->conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  b->idle_timeout_s);
		b->restored = true;
	}
	if (n > 0)
		return n;
	return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void free_events(void *cls)
{
	struct events_body *b = cls;

	api_exec_stream_release(b->stream);
	free(b);
}

/* A streamed exec: chunked (no length), each piece sent as soon as it is there. While the exec
 * runs the connection has no idle timeout: a program may be silent for longer than it, and a
 * client that left is noticed by the stream itself (and cancels the exec). */
static struct MHD_Response *events_response(struct MHD_Connection *conn, struct api_response *r,
					    unsigned idle_timeout_s)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct events_body *b = calloc(1, sizeof(*b));
	struct MHD_Response *response;

	if (b == NULL)
		return NULL;
	b->stream = r->events;
	b->conn = conn;
	b->idle_timeout_s = idle_timeout_s;
	api_exec_stream_set_client_fd(r->events, info != NULL ? info->connect_fd : -1);
	response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_events, b,
						     free_events);
	if (response == NULL) {
		free(b);
		return NULL;
	}
	r->events = NULL; /* the library owns it now */
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				api_events_content_type(r->events_format));
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	return response;
}

/* close: `Connection: close`, and the library closes the connection once r is sent.
 * idle_timeout_s: the connection's idle timeout, for a streamed exec to restore. */
static enum MHD_Result send_response(struct MHD_Connection *conn, struct api_response *r,
				     bool close, unsigned idle_timeout_s)
{
	bool json = r->body != NULL || r->stream != NULL;
	struct MHD_Response *response;
	enum MHD_Result ret;
	char *text = NULL;

	if (r->events != NULL) {
		response = events_response(conn, r, idle_timeout_s);
	} else if (r->download != NULL) {
		response = download_response(r);
	} else if (r->stream != NULL) {
		response = stream_response(r);
	} else if (r->text != NULL) {
		response = MHD_create_response_from_buffer(r->text_len, r->text,
							   MHD_RESPMEM_MUST_FREE);
		if (response != NULL) {
			r->text = NULL; /* the library owns it now */
			MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
						r->content_type);
		}
	} else if (r->body != NULL) {
		text = json_dumps(r->body, JSON_COMPACT);
		if (text == NULL)
			return MHD_NO;
		response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	} else {
		response = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (response == NULL) {
		free(text);
		return MHD_NO;
	}
	if (json)
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (r->allow[0] != '\0')
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->status == 401)
		MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"emberd\"");
	if (r->retry_after_s > 0) {
		char seconds[16];

		snprintf(seconds, sizeof(seconds), "%u", r->retry_after_s);
		MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
	}
	if (r->mcp_session_id[0] != '\0')
		MHD_add_response_header(response, "Mcp-Session-Id", r->mcp_session_id);
	if (r->e2b_next_token[0] != '\0')
		MHD_add_response_header(response, "X-Next-Token", r->e2b_next_token);
	if (close)
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, r->status, response);
	MHD_destroy_response(response);
	return ret;
}

/* The 413, always closing the connection: after a body refused unread the connection cannot be
 * reused, and after one read to its end a client that sent that much is not owed another. */
static enum MHD_Result respond_too_large(struct api_server *s, struct request_state *st,
					 struct MHD_Connection *conn, const char *method,
					 const char *url)
{
	_cleanup_response_ struct api_response r = { .status = 413 };
	enum MHD_Result ret;
	char msg[128];

	st->answered = true;
	snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes", s->max_body);
	r.body = api_encode_error(ember_error_kind_name(EMBER_E_TOO_LARGE), msg);
	ret = send_response(conn, &r, true, s->connection_timeout_s);
	log_event(LOG_INFO, NULL, "http.request", (time_mono_us() - st->started_us) / 1000,
		  "method=%s path=%.200s status=413 body_bytes=%llu", method, url,
		  (unsigned long long)st->received);
	return ret;
}

/* Whether a body of `bytes` is still worth reading to its end to answer 413 (server.h). */
static bool discardable(const struct api_server *s, uint64_t bytes)
{
	return bytes <= (uint64_t)s->max_body + API_BODY_DISCARD_MAX;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The TCP listener's checks (guard.h), answered before the body is read. */
static enum MHD_Result refuse_if_unwelcome(struct api_listener *l, struct request_state *st,
					   struct MHD_Connection *conn, const char *method,
					   const char *url)
{
	struct api_server *s = l->server;
	struct api_guard_request req = {
		.host = header(conn, MHD_HTTP_HEADER_HOST),
		.origin = header(conn, "Origin"),
		.sec_fetch_site = header(conn, "Sec-Fetch-Site"),
		.authorization = header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
		.token_checked_elsewhere = l->is_e2b,
	};
	_cleanup_response_ struct api_response r = { 0 };
	struct ember_error *err = NULL;
	enum MHD_Result ret;

	if (api_guard_check(l->guard, &req, &err) == 0)
		return MHD_YES;
	st->answered = true;
	if (l->is_e2b)
		e2b_error_rest(&r, err);
	else
		api_response_error(&r, err);
	log_event(LOG_WARN, NULL, "http.refused", -1, "method=%s path=%.200s status=%u: %s",
		  method, url, r.status, err->message);
	ember_error_free(&err);
	ret = send_response(conn, &r, false, s->connection_timeout_s);
	return ret;
}

/* The deadline entry of a TCP connection (NULL for the Unix socket or an unwatched one). */
static struct deadline_conn *connection_deadline(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info != NULL ? info->socket_context : NULL;
}

static enum MHD_Result add_query_pair(void *cls, enum MHD_ValueKind kind, const char *key,
				      size_t key_size, const char *value, size_t value_size)
{
	struct api_query *q = cls;

	(void)kind;
	/* A %00 decodes to a NUL that would silently cut the C string: refused, not truncated. */
	if (strlen(key) != key_size || (value != NULL && strlen(value) != value_size)) {
		q->has_nul = true;
		return MHD_NO;
	}
	if (q->count >= API_QUERY_PAIRS_MAX) {
		q->too_many = true;
		return MHD_NO;
	}
	q->pairs[q->count].key = key;
	q->pairs[q->count].value = value;
	q->count++;
	return MHD_YES;
}

/* A file upload (routes.h api_route_upload): true when this request is one. Its body has no
 * cap (the guest's space is the limit) and no whole-request deadline (it arrives at the pace
 * the guest writes it; the library's idle timeout still applies). */
static bool begin_upload(struct api_server *s, struct request_state *st,
			 struct MHD_Connection *conn, const char *method, const char *url)
{
	struct api_query query = { .count = 0 };

	if (strcmp(method, "PUT") != 0)
		return false;
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, add_query_pair, &query);
	if (!api_route_upload(s->ctx, method, url, &query, &st->upload))
		return false;
	deadline_conn_received(connection_deadline(conn));
	return true;
}

/* An E2B listener's request as e2b_route() takes it (body NULL: not read yet). */
static void e2b_request_from(struct MHD_Connection *conn, const char *method, const char *url,
			     const struct api_query *query, struct e2b_request *req)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	*req = (struct e2b_request){
		.method = method,
		.path = url,
		.query = query,
		.api_key = header(conn, "X-API-KEY"),
		.access_token = header(conn, "X-Access-Token"),
		.traffic_token = header(conn, "E2B-Traffic-Access-Token"),
		.sandbox_id = header(conn, "E2b-Sandbox-Id"),
		.sandbox_port = header(conn, "E2b-Sandbox-Port"),
		.authorization = header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
		.content_type = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
		.content_encoding = header(conn, MHD_HTTP_HEADER_CONTENT_ENCODING),
		.accept = header(conn, MHD_HTTP_HEADER_ACCEPT),
		.keepalive_ping = header(conn, "Keepalive-Ping-Interval"),
		.connect_timeout = header(conn, "Connect-Timeout-Ms"),
		.client_fd = info != NULL ? info->connect_fd : -1,
	};
}

/* An E2B upload (e2b.h e2b_route_upload): streamed like a native one (begin_upload). */
static bool begin_e2b_upload(struct api_server *s, struct request_state *st,
			     struct MHD_Connection *conn, const char *method, const char *url)
{
	struct api_query query = { .count = 0 };
	struct e2b_request req;

	if (strcmp(method, "POST") != 0)
		return false;
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, add_query_pair, &query);
	e2b_request_from(conn, method, url, &query, &req);
	if (!e2b_route_upload(&s->e2b_ctx, &req, &st->e2b_upload))
		return false;
	deadline_conn_received(connection_deadline(conn));
	return true;
}

/* The first call for a request: its state, the checks of where it came from, and a declared
 * oversize body: read and dropped up to API_BODY_DISCARD_MAX past the cap, refused unread
 * beyond. */
static enum MHD_Result begin_request(struct api_listener *l, struct MHD_Connection *conn,
				     const char *method, const char *url, void **con_cls)
{
	struct api_server *s = l->server;
	const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
	struct request_state *st = calloc(1, sizeof(*st));
	unsigned long long declared;

	if (st == NULL)
		return MHD_NO;
	st->started_us = time_mono_us();
	*con_cls = st;
	if (!l->is_unix && refuse_if_unwelcome(l, st, conn, method, url) != MHD_YES)
		return MHD_NO;
	if (st->answered)
		return MHD_YES;
	if (l->is_e2b && begin_e2b_upload(s, st, conn, method, url))
		return MHD_YES;
	if (!l->is_e2b && begin_upload(s, st, conn, method, url))
		return st->upload != NULL ? MHD_YES : MHD_NO;
	declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
	if (declared > s->max_body) {
		st->too_large = true;
		if (!discardable(s, declared))
			return respond_too_large(s, st, conn, method, url);
	}
	return MHD_YES;
}

/* A piece of body: kept up to the cap, then dropped (the 413 goes out at the end), until there
 * has been too much even to drop: then the connection is closed. Only a chunked body gets that
 * far (a declared one is refused in begin_request), and the library takes no response in the
 * middle of a body, so its sender sees the connection end instead of a 413. */
static enum MHD_Result collect_body(struct api_server *s, struct request_state *st,
				    const char *method, const char *url, const char *data,
				    size_t *size)
{
	size_t n = *size;

	st->received += n;
	*size = 0; /* consumed (or dropped) */
	if (st->answered)
		return MHD_YES;
	if (!st->too_large && st->received > s->max_body) {
		st->too_large = true;
		buf_release(&st->body);
	}
	if (st->too_large && !discardable(s, st->received)) {
		log_event(LOG_WARN, NULL, "http.too_large", (time_mono_us() - st->started_us) / 1000,
			  "method=%s path=%.200s: closed the connection after %llu body bytes "
			  "(limit %zu)", method, url, (unsigned long long)st->received,
			  s->max_body);
		return MHD_NO;
	}
	if (!st->too_large && buf_append(&st->body, data, n) < 0)
		return MHD_NO;
	return MHD_YES;
}

/* The whole body is in: route it, answer and log. */
static enum MHD_Result finish_request(struct api_listener *l, struct request_state *st,
				      struct MHD_Connection *conn, const char *method,
				      const char *url)
{
	struct api_server *s = l->server;
	struct e2b_request e2b;
	_cleanup_response_ struct api_response r = { 0 };
	struct api_query query = { .count = 0 };
	enum MHD_Result ret;

	query.accept = header(conn, MHD_HTTP_HEADER_ACCEPT);
	query.mcp_session_id = header(conn, "Mcp-Session-Id");
	query.mcp_protocol_version = header(conn, "MCP-Protocol-Version");
	deadline_conn_received(connection_deadline(conn));
	if (st->answered)
		return MHD_YES;
	if (st->too_large)
		return respond_too_large(s, st, conn, method, url);
	if (buf_terminate(&st->body) < 0)
		return MHD_NO;
	/* The library split the query at `&` and the first `=` and percent-decoded both sides; the
	 * strings live as long as the request. */
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, add_query_pair, &query);
	if (l->is_e2b) {
		e2b_request_from(conn, method, url, &query, &e2b);
		e2b.body = (const char *)(st->body.data != NULL ? st->body.data : (uint8_t *)"");
		e2b.body_len = st->body.len;
		e2b_route(&s->e2b_ctx, &e2b, &r);
	} else {
		api_route(s->ctx, method, url, &query,
			  (const char *)(st->body.data != NULL ? st->body.data : (uint8_t *)""),
			  st->body.len, &r);
	}
	ret = send_response(conn, &r, false, s->connection_timeout_s);
	log_event(r.status >= 500 ? LOG_WARN : LOG_INFO, NULL, "http.request",
		  (time_mono_us() - st->started_us) / 1000, "method=%s path=%.200s status=%u",
		  method, url, r.status);
	return ret;
}

/* An upload's body is all in: the guest's answer (or the error recorded on the way). */
static enum MHD_Result finish_upload(struct api_server *s, struct request_state *st,
				     struct MHD_Connection *conn, const char *method,
				     const char *url)
{
	_cleanup_response_ struct api_response r = { 0 };
	enum MHD_Result ret;

	if (st->e2b_upload != NULL) {
		e2b_upload_finish(st->e2b_upload, &r);
	} else {
		api_upload_finish(st->upload, &r.status, &r.body);
		if (r.body == NULL)
			api_response_error(&r, NULL);
	}
	ret = send_response(conn, &r, false, s->connection_timeout_s);
	log_event(r.status >= 500 ? LOG_WARN : LOG_INFO, NULL, "http.request",
		  (time_mono_us() - st->started_us) / 1000,
		  "method=%s path=%.200s status=%u body_bytes=%llu", method, url, r.status,
		  (unsigned long long)st->received);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct api_listener *l = cls;
	struct api_server *s = l->server;
	struct request_state *st = *con_cls;

	(void)version;
	if (st == NULL)
		return begin_request(l, conn, method, url, con_cls);
	if ((st->upload != NULL || st->e2b_upload != NULL) && *upload_data_size > 0) {
		/* Blocks while the guest has no room: the client waits (backpressure). */
		if (st->e2b_upload != NULL
			    ? !e2b_upload_data(st->e2b_upload, upload_data, *upload_data_size)
			    : !api_upload_data(st->upload, upload_data, *upload_data_size))
			return MHD_NO;
		st->received += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
		return collect_body(s, st, method, url, upload_data, upload_data_size);
	if (st->upload != NULL || st->e2b_upload != NULL)
		return finish_upload(s, st, conn, method, url);
	return finish_request(l, st, conn, method, url);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct request_state *st = *con_cls;

	(void)cls;
	(void)toe;
	/* The response went out (or the request died): the next one's clock starts. */
	deadline_conn_rearm(connection_deadline(conn));
	if (st == NULL)
		return;
	buf_release(&st->body);
	api_upload_free(st->upload); /* one cut short is cancelled: nothing is left behind */
	e2b_upload_free(st->e2b_upload);
	free(st);
	*con_cls = NULL;
}

/* Registers TCP connections with the request deadline when they open and drops them when they
 * close; the entry lives in the connection's socket context. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			      enum MHD_ConnectionNotificationCode code)
{
	struct api_listener *l = cls;
	const union MHD_ConnectionInfo *info;

	if (l->is_unix)
		return;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = info != NULL
			? deadline_conn_add(l->server->deadlines, info->connect_fd) : NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		deadline_conn_remove(*socket_context);
		*socket_context = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_event(LOG_WARN, NULL, "http.server", -1, "%s", msg);
}

/* Binds a listening socket on "HOST:PORT" / "[V6]:PORT" (port 0: the kernel picks one). */
static int listen_tcp(const char *addr, struct ember_error **err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct hostport where;
	char port[8];
	int fd = -1, one = 1, rc;

	if (hostport_parse(addr, HOSTPORT_ZERO_PORT, &where, err) < 0)
		return ember_error_wrap(err, "--addr `%.300s`", addr);
	snprintf(port, sizeof(port), "%u", where.port);
	rc = getaddrinfo(where.host, port, &hints, &res);
	if (rc != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "--addr `%s`: %s", where.host,
				       gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ember_error_sys(err, "listen on %s", addr);
	return fd;
}

static int listen_unix(const char *path, struct ember_error **err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;
	mode_t old;

	if (strlen(path) >= sizeof(sun.sun_path))
		return ember_error_set(err, EMBER_E_INVALID, 0, "--unix path is too long");
	strcpy(sun.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ember_error_sys(err, "socket");
	old = umask(0177); /* the socket is created 0600: only the owner may drive sandboxes */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0) {
		umask(old);
		ember_error_sys(err, "listen on `%s`", path);
		close(fd);
		return -1;
	}
	umask(old);
	chmod(path, 0600);
	return fd;
}

static struct MHD_Daemon *start_daemon(struct api_listener *l, const struct api_server_config *cfg,
				       int listen_fd)
{
	return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
					MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC,
				0, NULL, NULL, handle, l,
				/* The logger first, so MHD never falls back to its own. */
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
				MHD_OPTION_LISTEN_SOCKET, listen_fd,
				MHD_OPTION_NOTIFY_COMPLETED, request_completed, l,
				MHD_OPTION_NOTIFY_CONNECTION, notify_connection, l,
				MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				l->is_unix ? 0u : cfg->max_connections_per_ip,
				MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				MHD_OPTION_END);
}

/* Who may call over TCP (guard.h), checked before anything listens. */
static int set_up_guard(struct api_server *s, const struct api_server_config *cfg,
			struct ember_error **err)
{
	if (api_guard_init(&s->guard, cfg->addr, cfg->allow_origins, cfg->nallow_origins,
			   err) < 0)
		return -1;
	if (cfg->auth_token_file != NULL &&
	    api_guard_load_token(&s->guard, cfg->auth_token_file, err) < 0)
		return -1;
	if (api_guard_check_config(&s->guard, err) < 0)
		return -1;
	return deadline_registry_start((cfg->request_timeout_s != 0 ? cfg->request_timeout_s
								    : API_REQUEST_TIMEOUT_S) * 1000u,
				       &s->deadlines, err);
}

/* A TCP listener l on addr; *port gets the port bound. */
static int start_tcp(struct api_listener *l, const struct api_server_config *cfg,
		     const char *addr, unsigned *port, struct ember_error **err)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = listen_tcp(addr, err);

	if (fd < 0)
		return -1;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	l->mhd = start_daemon(l, cfg, fd);
	if (l->mhd == NULL) {
		close(fd);
		return ember_error_set(err, EMBER_E_INTERNAL, 0,
				       "cannot start the HTTP server on %s", addr);
	}
	return 0;
}

/* The E2B listener (--e2b-addr): the same Host/Origin checks for its own address; the token
 * is the same, but its router checks it where the SDKs send it (X-API-KEY, X-Access-Token). */
static int start_e2b(struct api_server *s, const struct api_server_config *cfg,
		     struct ember_error **err)
{
	if (api_guard_init(&s->e2b_guard, cfg->e2b_addr, cfg->allow_origins,
			   cfg->nallow_origins, err) < 0)
		return ember_error_wrap(err, "--e2b-addr");
	memcpy(s->e2b_guard.token, s->guard.token, sizeof(s->guard.token));
	if (api_guard_check_config(&s->e2b_guard, err) < 0)
		return ember_error_wrap(err, "--e2b-addr");
	s->e2b_ctx = (struct e2b_context){ .api = s->ctx, .auth_token = s->e2b_guard.token };
	return start_tcp(&s->e2b, cfg, cfg->e2b_addr, &s->e2b_port, err);
}

static int start_unix(struct api_server *s, const struct api_server_config *cfg,
		      struct ember_error **err)
{
	int fd = listen_unix(cfg->unix_path, err);

	if (fd < 0)
		return -1;
	snprintf(s->unix_path, sizeof(s->unix_path), "%s", cfg->unix_path);
	s->unix_socket.mhd = start_daemon(&s->unix_socket, cfg, fd);
	if (s->unix_socket.mhd == NULL) {
		close(fd);
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "cannot serve on `%s`",
				       cfg->unix_path);
	}
	return 0;
}

int api_server_start(const struct api_server_config *cfg, struct api_context *ctx,
		     struct api_server **out, struct ember_error **err)
{
	struct api_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return ember_error_oom(err);
	s->ctx = ctx;
	s->max_body = cfg->max_body_bytes;
	s->connection_timeout_s = cfg->connection_timeout_s;
	s->tcp = (struct api_listener){ .server = s, .guard = &s->guard };
	s->unix_socket = (struct api_listener){ .server = s, .is_unix = true };
	s->e2b = (struct api_listener){ .server = s, .is_e2b = true, .guard = &s->e2b_guard };
	if (set_up_guard(s, cfg, err) < 0 ||
	    start_tcp(&s->tcp, cfg, cfg->addr, &s->port, err) < 0 ||
	    (cfg->unix_path != NULL && start_unix(s, cfg, err) < 0) ||
	    (cfg->e2b_addr != NULL && start_e2b(s, cfg, err) < 0)) {
		api_server_stop(s);
		return -1;
	}
	*out = s;
	return 0;
}

unsigned api_server_port(const struct api_server *server)
{
	return server->port;
}

unsigned api_server_e2b_port(const struct api_server *server)
{
	return server->e2b_port;
}

void api_server_stop(struct api_server *s)
{
	if (s == NULL)
		return;
	/* MHD_stop_daemon waits for connection threads, so in-flight requests finish first. */
	if (s->tcp.mhd != NULL)
		MHD_stop_daemon(s->tcp.mhd);
	if (s->unix_socket.mhd != NULL)
		MHD_stop_daemon(s->unix_socket.mhd);
	if (s->e2b.mhd != NULL)
		MHD_stop_daemon(s->e2b.mhd);
	if (s->unix_path[0] != '\0')
		unlink(s->unix_path);
	/* Streamed execs whose clients are gone now: their workers cancel and end soon. */
	api_exec_stream_drain();
	deadline_registry_stop(s->deadlines);
	free(s);
}
