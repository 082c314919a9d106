/* encode.h - JSON encodings of API responses (sandbox, exec result, error, packs, processes).
 * Used by the routes (and ember-vm for processes); each returns a new jansson value, or NULL on
 * out-of-memory. Never loses or replaces a guest byte: text or base64, see docs/api.md. */
#ifndef EMBER_API_ENCODE_H
#define EMBER_API_ENCODE_H

#include <jansson.h>

#include "api/stream.h"

#include "channel/channel.h"
#include "sandbox/catalog.h"
#include "sandbox/catalogdiff.h"
#include "sandbox/manager.h"
#include "util/error.h"

json_t *api_encode_sandbox(const struct sandbox_info *info);
/* The exec result as a body produced while it is sent (stream.h); takes res's output buffers. */
struct api_stream *api_encode_exec_result(struct channel_exec_result *res,
					  struct ember_error **err);
/* The exec result's members other than the output: exit_code, signal, duration_ms, ... */
json_t *api_encode_exit(const struct proto_exit *exit);
/* A code context: {"id", "language", "created_at", "execs", "restarts", "busy"}. */
json_t *api_encode_context(const struct sandbox_context *context);
json_t *api_encode_error(const char *code, const char *message);
/* A snapshot: {"id", "sandbox_id", "language_pack", "vcpus", "memory_mib", "overlay_mib",
 * "created_at", "size_bytes", "labels"}. */
struct snapshot_info;
json_t *api_encode_snapshot(const struct snapshot_info *info);
json_t *api_encode_pack(const struct pack *pack);
/* {"added":[..],"removed":[..],"changed":[..],"unchanged":[..]}: what a reload did. */
json_t *api_encode_catalog_diff(const struct catalog_diff *diff);
/* {"processes": [{pid, ppid, uid, state, comm}, ...]} */
json_t *api_encode_processes(const struct proto_process *procs, size_t count);
/* A background process: pid, state, tag, times, stdin_open, byte counts, and once it exited the
 * exit members (api_encode_exit) or, lost, an error text. */
json_t *api_encode_background(const struct procs_info *info);
/* The same with what its rings hold (stdout/stderr members by the bytes rule); takes out[]. */
struct api_stream *api_encode_background_output(const struct procs_info *info, uint8_t *out[2],
						const size_t len[2], struct ember_error **err);

#endif
