/* mcptools.h - the MCP server's tools (docs/mcp.md): their table (names, JSON Schemas for
 * input and output) and the calls, made on the manager through the same functions the HTTP
 * handlers use. Called by mcp.c for tools/list and tools/call; each MCP session owns one
 * workspace (its run_code sandboxes and the sandboxes it created). Never speaks HTTP or
 * JSON-RPC, and never holds a lock across a call into the manager (which may boot a VM). */
#ifndef EMBER_API_MCPTOOLS_H
#define EMBER_API_MCPTOOLS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "sandbox/manager.h"
#include "util/error.h"

/* A tool's answer carries at most this much of each output stream (stdout, stderr, a file's
 * content): a model's context is the consumer, and 64 KiB is already more text than a model
 * reads usefully; the rest is dropped and the result says so. */
#define MCP_OUTPUT_MAX (64u * 1024u)
/* Sandboxes one MCP session may own at once (run_code's and sandbox_create's): a session is
 * one agent, and every sandbox is a VM's memory. Beyond: the tool fails, naming the limit. */
#define MCP_SESSION_SANDBOXES_MAX 8

/* run_code's sandbox (and context) for one language, made on first use. */
struct mcp_code_slot {
	char language[16];
	char sandbox_id[SANDBOX_ID_LEN + 1];
	char context_id[PROTO_CONTEXT_ID_MAX + 1];
};

/* One session's tool state, behind its own lock (held only to read or change these fields). */
struct mcp_workspace {
	pthread_mutex_t lock;
	pthread_cond_t changed;        /* a slot's creation or a language's run finished */
	bool creating;                 /* a run_code is making a sandbox: others wait */
	unsigned running;              /* bit 1 << language: a run_code of it is running (its
					* context takes one run at a time, so the next waits) */
	bool ended;                    /* the session is gone: new sandboxes are deleted at once */
	struct mcp_code_slot slots[4];
	size_t nslots;
	char owned[MCP_SESSION_SANDBOXES_MAX][SANDBOX_ID_LEN + 1];
	size_t nowned;
	char label[48];                /* "mcp_session" label value: the session id */
};

void mcp_workspace_init(struct mcp_workspace *ws, const char *session_id);
/* The session ended: every sandbox it owns is deleted (a call still running deletes the one it
 * makes when it returns). Blocks for the deletes. */
void mcp_workspace_end(struct mcp_workspace *ws, struct manager *m);
void mcp_workspace_destroy(struct mcp_workspace *ws);

/* tools/list's "tools" array (a new reference), NULL on out of memory. */
json_t *mcp_tools_list(void);

/* Whether a tool of that name exists (an unknown one is a JSON-RPC error, not a tool error). */
bool mcp_tool_exists(const char *name);

/* tools/call: a CallToolResult (a new reference). A failing tool is a result with isError true
 * and the error in its text, not a failure of this function; NULL only on out of memory. */
json_t *mcp_tools_call(struct manager *m, struct mcp_workspace *ws, const char *name,
		       json_t *arguments);

#endif
