/* mcp.h - the MCP server's Streamable HTTP transport at /mcp (docs/mcp.md): JSON-RPC 2.0,
 * initialize with protocol version negotiation, sessions (Mcp-Session-Id) and their idle
 * timeout, ping, tools/list and tools/call (the tools are mcptools.c's).
 * Called by routes.c for POST and DELETE /mcp, after the guard (guard.c) let the request in;
 * the daemon's main makes and frees the server. Never answers with a server-initiated stream
 * (GET /mcp is 405) and never holds its lock across a tool call. */
#ifndef EMBER_API_MCP_H
#define EMBER_API_MCP_H

#include <stddef.h>

#include "api/routes.h"
#include "sandbox/manager.h"
#include "util/error.h"

/* The protocol revisions this server speaks, newest first: an initialize naming another gets
 * the newest (MCP lifecycle, version negotiation). */
#define MCP_PROTOCOL_LATEST "2025-11-25"
#define MCP_PROTOCOL_PREVIOUS "2025-06-18"

/* Sessions at once: each is an agent that may own MCP_SESSION_SANDBOXES_MAX VMs, and a
 * client that never ends its sessions must not grow the table without bound. Beyond: 429. */
#define MCP_SESSIONS_MAX 64
/* With MCP_SESSIONS_MAX open, a new initialize evicts the least recently used session that
 * owns no sandbox and nobody used for this long, or half the idle timeout when that is shorter
 * (else it gets 429). */
#define MCP_EVICT_IDLE_MS 60000
/* A session nobody used for this long ends (and its sandboxes go): long enough for an agent
 * that thinks between calls, short enough that an abandoned one does not hold VMs for hours. */
#define MCP_SESSION_IDLE_S (30u * 60u)
/* Mcp-Session-Id: "mcp_" and 32 hex digits (visible ASCII, as the transport requires). */
#define MCP_SESSION_ID_MAX 40

struct mcp_server;

/* idle_s: a session's idle timeout (0: MCP_SESSION_IDLE_S). Starts the thread that ends idle
 * sessions. */
int mcp_server_new(struct manager *m, unsigned idle_s, struct mcp_server **out,
		   struct ember_error **err);
/* Ends every session (deleting their sandboxes) and refuses new ones (503); before the
 * manager shuts down, so the sandboxes are really deleted. Requests in flight finish. */
void mcp_server_stop(struct mcp_server *s);
/* Stops (if not yet) and frees; the API server must be stopped. NULL is fine. */
void mcp_server_free(struct mcp_server *s);

/* One HTTP request to /mcp; the headers are NULL when absent. */
struct mcp_http_request {
	const char *method;            /* "POST" or "DELETE" */
	const char *session_id;        /* Mcp-Session-Id */
	const char *protocol_version;  /* MCP-Protocol-Version */
	const char *body;
	size_t body_len;
};

/* Fills resp (status, JSON-RPC body or none, resp->mcp_session_id after an initialize). */
void mcp_handle(struct mcp_server *s, const struct mcp_http_request *req,
		struct api_response *resp);

#endif
