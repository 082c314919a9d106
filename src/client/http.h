/* http.h - a small HTTP/1.1 JSON client on libcurl, over TCP or a Unix socket.
 * Used by emberctl (against emberd) and the Firecracker driver (against its API socket).
 * Response bodies are capped; a body that is not JSON is reported, not guessed at. */
#ifndef EMBER_CLIENT_HTTP_H
#define EMBER_CLIENT_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define HTTP_CLIENT_BODY_MAX (64u * 1024u * 1024u)

struct http_client;

/* base: "HOST:PORT", "http://HOST:PORT" (port 1-65535, util/hostport.h) or
 * "unix:/path/to.sock"; anything else is EMBER_E_INVALID, its message saying what is wrong but
 * not quoting base (the caller says where it came from). */
int http_client_create(const char *base, struct http_client **out, struct ember_error **err);
void http_client_free(struct http_client *c);

/* Sends `Authorization: Bearer <token>` with every request, the token being the first line of
 * path (at most 512 characters). */
int http_client_set_token_file(struct http_client *c, const char *path, struct ember_error **err);

/* Sends method path with an optional JSON body; *status gets the HTTP status and *reply (may
 * be NULL) the parsed JSON reply, or NULL when the reply is empty. timeout_ms bounds the whole
 * request (0 = none). Transport failures are EMBER_E_UNAVAILABLE. */
int http_client_request(struct http_client *c, const char *method, const char *path,
			json_t *body, long timeout_ms, long *status, json_t **reply,
			struct ember_error **err);

/* Receives a streamed reply's bytes as they arrive, in pieces of any size; returns false to
 * abort the transfer. */
typedef bool (*http_body_fn)(void *ctx, const char *data, size_t len);

/* Like http_client_request, for a reply read as it arrives (an event stream): asks for accept
 * (e.g. "application/x-ndjson") and hands every piece of the body, whatever the status, to
 * on_body. No timeout: the reply lasts as long as the server sends. Transport failures,
 * on_body's abort included, are EMBER_E_UNAVAILABLE; *status is set when a status arrived. */
int http_client_stream(struct http_client *c, const char *method, const char *path, json_t *body,
		       const char *accept, http_body_fn on_body, void *ctx, long *status,
		       struct ember_error **err);

/* --- raw bodies (file transfers, docs/api.md "Files") --- */

/* Called as bytes move: done of total (total 0 when unknown). */
typedef void (*http_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* PUT (or method) path with the bytes read from fd as an application/octet-stream body,
 * streamed (size: the byte count, or -1 to send chunked until EOF). *status and *reply as for
 * http_client_request. progress may be NULL. No timeout. */
int http_client_upload(struct http_client *c, const char *method, const char *path, int fd,
		       int64_t size, http_progress_fn progress, void *pctx, long *status,
		       json_t **reply, struct ember_error **err);

/* GET path: with a 2xx answer its body goes to fd as it arrives (*written counts it), any
 * other answer's JSON body to *reply. progress may be NULL. No timeout. A body cut short of its
 * Content-Length is EMBER_E_UNAVAILABLE. */
int http_client_download(struct http_client *c, const char *path, int fd,
			 http_progress_fn progress, void *pctx, long *status, uint64_t *written,
			 json_t **reply, struct ember_error **err);

/* A request with raw JSON bytes and extra header lines ("Name: value", NULL-terminated; NULL:
 * none), for a peer that speaks more than our routes (emberctl mcp's bridge to /mcp). The reply
 * body goes to *reply (malloc'd, NUL-terminated, *reply_len bytes; NULL when empty) whatever
 * the status; the value of the response header `capture` (case-insensitive), when sent and
 * shorter than captured_size, to captured ("" otherwise). No timeout. */
int http_client_exchange(struct http_client *c, const char *method, const char *path,
			 const char *body, size_t body_len, const char *const *header_lines,
			 const char *capture, char *captured, size_t captured_size, long *status,
			 char **reply, size_t *reply_len, struct ember_error **err);

/* The query-string form of text (percent-encoded); malloc'd, NULL when out of memory. */
char *http_client_escape(struct http_client *c, const char *text);

#endif
