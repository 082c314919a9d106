/* mcp.c - `emberctl mcp`: the MCP stdio transport, bridged to the daemon's /mcp (docs/mcp.md).
 * Reads newline-delimited JSON-RPC messages on stdin, POSTs each to /mcp with the session's
 * Mcp-Session-Id and MCP-Protocol-Version, writes each answer as one line on stdout; logs go to
 * stderr only (stdout carries nothing but MCP messages). One message at a time: a long
 * tools/call holds the next message until it is answered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"

/* One message's line: the daemon's --max-body-bytes is at most 64 MiB, so a longer line could
 * never be taken; it is dropped (and answered, when it has an id, with a parse error). */
#define MCP_LINE_MAX (64u << 20)

struct bridge {
	struct ctl *c;
	char session[64];       /* "" before initialize */
	char version[32];       /* the negotiated revision, "" before initialize */
	char *init;             /* the client's initialize message (malloc'd), replayed when the
				 * daemon ended the session: a stdio client initializes once */
	size_t init_len;
};

/* The initialized notification a replayed initialize is followed by, as the client did. */
static const char INITIALIZED[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

static void log_line(const char *fmt, const char *arg)
{
	fprintf(stderr, "emberctl mcp: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
}

/* One message to the client: compact JSON (never a raw newline inside) and a newline. */
static int emit(json_t *msg)
{
	_cleanup_free_ char *text = json_dumps(msg, JSON_COMPACT);

	if (text == NULL || printf("%s\n", text) < 0 || fflush(stdout) != 0)
		return -1;
	return 0;
}

static int emit_error(json_t *id, int code, const char *message)
{
	_cleanup_json_ json_t *msg = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
					      id != NULL ? id : json_null(), "error", "code",
					      code, "message", message);

	return msg != NULL ? emit(msg) : -1;
}

/* The daemon's answer as the client should see it: JSON-RPC as is (a transport error's null
 * id replaced by the request's), an emberd error (401, 413, ...) turned into a JSON-RPC error. */
static int relay(struct bridge *b, json_t *id, long status, const char *reply, size_t len)
{
	_cleanup_json_ json_t *msg = json_loadb(reply, len, JSON_DECODE_ANY, NULL);
	char text[600];
	json_t *error;

	if (status == 404) /* the session ended and could not be started again */
		b->session[0] = '\0';
	if (json_is_object(msg) && json_object_get(msg, "jsonrpc") != NULL) {
		if (json_is_null(json_object_get(msg, "id")) && id != NULL)
			json_object_set(msg, "id", id);
		return emit(msg);
	}
	error = json_object_get(msg, "error");
	snprintf(text, sizeof(text), "emberd answered HTTP %ld: %.500s", status,
		 json_is_string(json_object_get(error, "message"))
			 ? json_string_value(json_object_get(error, "message")) : "(no message)");
	if (id == NULL) {
		log_line("%s", text);
		return 0;
	}
	return emit_error(id, -32000, text);
}

/* After an initialize answered: the revision to name in MCP-Protocol-Version. */
static void note_version(struct bridge *b, const char *reply, size_t len)
{
	_cleanup_json_ json_t *msg = json_loadb(reply, len, 0, NULL);
	const char *v = json_string_value(
		json_object_get(json_object_get(msg, "result"), "protocolVersion"));

	if (v != NULL && strlen(v) < sizeof(b->version))
		strcpy(b->version, v);
}

static void end_session(struct bridge *b)
{
	char header[128];
	const char *headers[] = { header, NULL };
	struct ember_error *err = NULL;
	char *reply = NULL;
	size_t len;
	long status = 0;

	if (b->session[0] == '\0')
		return;
	snprintf(header, sizeof(header), "Mcp-Session-Id: %s", b->session);
	if (http_client_exchange(b->c->http, "DELETE", "/mcp", NULL, 0, headers, NULL, NULL, 0,
				 &status, &reply, &len, &err) < 0) {
		log_line("%s", err->message);
		ember_error_free(&err);
	}
	free(reply);
	b->session[0] = '\0';
}

/* POSTs one message with the session's headers; captures a new session id and, after an
 * initialize, the revision. *reply is malloc'd (NULL or empty for a 202). */
static int post(struct bridge *b, const char *line, size_t len, bool initialize, long *status,
		char **reply, size_t *reply_len, struct ember_error **err)
{
	char session_header[128], version_header[64], captured[64];
	const char *headers[3] = { NULL, NULL, NULL };
	size_t n = 0;

	if (b->session[0] != '\0') {
		snprintf(session_header, sizeof(session_header), "Mcp-Session-Id: %s", b->session);
		headers[n++] = session_header;
	}
	if (b->version[0] != '\0' && !initialize) {
		snprintf(version_header, sizeof(version_header), "MCP-Protocol-Version: %s",
			 b->version);
		headers[n++] = version_header;
	}
	if (http_client_exchange(b->c->http, "POST", "/mcp", line, len, headers, "Mcp-Session-Id",
				 captured, sizeof(captured), status, reply, reply_len, err) < 0)
		return -1;
	if (captured[0] != '\0')
		snprintf(b->session, sizeof(b->session), "%s", captured);
	if (initialize && *status == 200)
		note_version(b, *reply, *reply_len);
	return 0;
}

/* The daemon ended the session (idle timeout, restart): a stdio client initializes only once
 * per process, so its initialize is replayed, with the initialized notification, for a new
 * session. Its sandboxes and variables are gone; stderr says so. Returns 0 when a new session
 * is open. */
static int reinitialize(struct bridge *b)
{
	struct ember_error *err = NULL;
	char *reply = NULL;
	size_t len = 0;
	long status = 0;
	int ret;

	b->session[0] = '\0';
	if (b->init == NULL)
		return -1;
	ret = post(b, b->init, b->init_len, true, &status, &reply, &len, &err);
	free(reply);
	reply = NULL;
	if (ret < 0 || status != 200 || b->session[0] == '\0') {
		if (err != NULL)
			log_line("%s", err->message);
		ember_error_free(&err);
		return -1;
	}
	if (post(b, INITIALIZED, strlen(INITIALIZED), false, &status, &reply, &len, &err) < 0) {
		log_line("%s", err->message);
		ember_error_free(&err);
	}
	free(reply);
	log_line("%s", "the daemon had ended the MCP session (idle timeout or restart): a new one "
		 "was started; the old session's sandboxes and variables are gone");
	return 0;
}

/* One line from the client. Returns -1 only when stdout is gone. */
static int forward(struct bridge *b, const char *line, size_t len)
{
	_cleanup_json_ json_t *msg = json_loadb(line, len, JSON_DECODE_ANY, NULL);
	json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
	const char *method = json_string_value(json_object_get(msg, "method"));
	bool initialize = method != NULL && strcmp(method, "initialize") == 0;
	struct ember_error *err = NULL;
	_cleanup_free_ char *reply = NULL;
	size_t reply_len = 0;
	long status = 0;
	int ret;

	if (initialize) {
		end_session(b); /* a new initialize starts over */
		free(b->init);
		b->init = malloc(len);
		b->init_len = b->init != NULL ? len : 0;
		if (b->init != NULL)
			memcpy(b->init, line, len);
	}
	ret = post(b, line, len, initialize, &status, &reply, &reply_len, &err);
	if (ret == 0 && status == 404 && !initialize && b->session[0] != '\0' &&
	    reinitialize(b) == 0) {
		free(reply);
		reply = NULL;
		ret = post(b, line, len, false, &status, &reply, &reply_len, &err);
	}
	if (ret < 0) {
		log_line("%s", err->message);
		ret = id != NULL ? emit_error(id, -32000, err->message) : 0;
		ember_error_free(&err);
		return ret;
	}
	if (reply == NULL || reply_len == 0)
		return 0; /* 202: a notification or response was taken */
	return relay(b, id, status, reply, reply_len);
}

/* Splits what arrived into lines; a line past MCP_LINE_MAX is dropped up to its newline. */
int cmd_mcp(struct ctl *c, int argc, char **argv)
{
	struct bridge b = { .c = c };
	struct buf in = { 0 };
	char chunk[65536];
	bool dropping = false;
	int status = 0;

	(void)argv;
	if (argc > 0)
		return ctl_fail("%s", "usage: emberctl mcp (MCP over stdin/stdout; docs/mcp.md)");
	for (;;) {
		ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
		size_t start = 0, i;

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		if (buf_append(&in, chunk, (size_t)got) < 0) {
			status = ctl_fail("%s", "out of memory");
			goto out;
		}
		for (i = in.len - (size_t)got; i < in.len; i++) {
			size_t end = i;

			if (in.data[i] != '\n')
				continue;
			if (end > start && in.data[end - 1] == '\r')
				end--;
			if (!dropping && end > start &&
			    forward(&b, (const char *)in.data + start, end - start) < 0) {
				status = 1;
				goto out;
			}
			dropping = false;
			start = i + 1;
		}
		memmove(in.data, in.data + start, in.len - start);
		in.len -= start;
		if (in.len > MCP_LINE_MAX) {
			if (!dropping)
				log_line("%s", "dropped a message longer than 64 MiB");
			if (!dropping && emit_error(NULL, -32700, "Parse error: message too long") < 0) {
				status = 1;
				goto out;
			}
			dropping = true;
			in.len = 0;
		}
	}
	if (!dropping && in.len > 0 && forward(&b, (const char *)in.data, in.len) < 0)
		status = 1;
out:
	end_session(&b);
	free(b.init);
	buf_release(&in);
	return status;
}
