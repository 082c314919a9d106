/* stub_manager.h - the stub manager fuzz_api_mcp links instead of src/sandbox/manager.c
 * (stub_manager.c says what it answers). Only for fuzz targets; never in the daemon. */
#ifndef EMBER_FUZZ_STUB_MANAGER_H
#define EMBER_FUZZ_STUB_MANAGER_H

#include "channel/channel.h"
#include "sandbox/manager.h"
#include "sandbox/procs.h"

/* The one sandbox the stub knows: calls on it succeed. */
#define STUB_SANDBOX_ID "sb_0123456789abcdef0123456789abcdef"

#endif
