/* server.h - the HTTP/JSON API server (libmicrohttpd, one thread per connection).
 * Started by the daemon's main; the only place where errors become HTTP statuses and JSON
 * bodies. Never lets a request body grow past its cap (a file upload's body is not collected:
 * it streams to the guest at the guest's pace) and never dies on bad input. */
#ifndef EMBER_API_SERVER_H
#define EMBER_API_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox/catalog.h"
#include "sandbox/manager.h"
#include "util/error.h"
#include "vmm/vmm.h"

/* A request's headers and body arrive within this unless configured otherwise: generous for any
 * real client on a local machine (a 4 MiB body over loopback takes milliseconds), short enough
 * that a connection trickling bytes cannot hold a thread for long. */
#define API_REQUEST_TIMEOUT_S 30

/* An oversize body up to this much past --max-body-bytes is read and dropped before the 413 goes
 * out: a client that sends its whole body before reading the answer (Python's http.client and
 * most simple ones) would otherwise find the connection closed under it and report a broken
 * pipe instead of the 413. 64 MiB is the largest --max-body-bytes, so a body meant for any
 * emberd's limit gets its answer. It costs no memory (each piece is dropped from the library's
 * 64 KiB connection buffer), CPU at loopback speed (tens of ms), and time bounded by
 * --request-timeout-s, which covers the whole request. Beyond it the 413 goes out at once and
 * the connection closes. */
#define API_BODY_DISCARD_MAX (64ull << 20)

struct api_server_config {
	const char *addr;                /* "HOST:PORT" (IPv4, [IPv6] or name) */
	const char *unix_path;           /* optional, created mode 0600 */
	size_t max_body_bytes;           /* beyond: 413 */
	unsigned max_connections;
	unsigned max_connections_per_ip; /* TCP; beyond: refused at once (0: no cap) */
	unsigned connection_timeout_s;   /* idle clients are dropped after this */
	unsigned request_timeout_s;      /* a whole request must arrive within this (TCP; 0:
					  * API_REQUEST_TIMEOUT_S) */
	const char *const *allow_origins;/* browser origins allowed to call (default none) */
	size_t nallow_origins;
	const char *auth_token_file;     /* bearer token for TCP; required unless loopback */
	const char *e2b_addr;            /* "HOST:PORT" of the E2B-compatible listener (e2b/e2b.h),
					  * or NULL: none */
};

/* What the routes need; borrowed for the server's lifetime. */
struct api_context {
	struct manager *manager;          /* also the catalog in force (manager_catalog) */
	struct vmm_driver *driver;
	const char *vmm_selection_reason;
	int64_t started_mono_ms;
	struct mcp_server *mcp;           /* POST/DELETE /mcp (api/mcp.h) */
};

struct api_server;
struct mcp_server;

int api_server_start(const struct api_server_config *cfg, struct api_context *ctx,
		     struct api_server **out, struct ember_error **err);
/* The TCP port actually bound (useful with port 0). */
unsigned api_server_port(const struct api_server *server);
/* The E2B listener's port (0: none). */
unsigned api_server_e2b_port(const struct api_server *server);
/* Stops accepting, waits for connection threads, frees. */
void api_server_stop(struct api_server *server);

/* HTTP status for an error kind (exposed for tests). */
unsigned api_status_for(enum ember_error_kind kind);

#endif
