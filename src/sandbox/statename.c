/* statename.c - sandbox_state_name (manager.h): apart from manager.c so that what links the
 * API without the manager (the MCP fuzz target's stub manager) names states the same way. */
#include "sandbox/manager.h"

const char *sandbox_state_name(enum sandbox_state state)
{
	switch (state) {
	case SANDBOX_BOOTING: return "booting";
	case SANDBOX_READY: return "ready";
	case SANDBOX_DESTROYING: return "destroying";
	case SANDBOX_FAILED: return "failed";
	case SANDBOX_GONE: return "gone";
	case SANDBOX_PAUSING: return "pausing";
	case SANDBOX_PAUSED: return "paused";
	case SANDBOX_RESUMING: return "resuming";
	}
	return "unknown";
}
