/* encode.c - API response bodies: field names and shapes as docs/api.md gives them. */
#include "api/encode.h"
#include "api/stream.h"

#include <string.h>

#include "sandbox/snapshots.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"
#include "util/timeutil.h"

static json_t *timestamp(int64_t wall_ns)
{
	char text[40];

	if (wall_ns <= 0)
		return json_null();
	time_format_rfc3339(wall_ns, text, sizeof(text));
	return json_string(text);
}

/* Guest words (a failure reason, an ERROR frame's text cut at a byte limit) as a JSON string
 * that always exists: bytes that are not UTF-8 become U+FFFD instead of losing the field. */
static json_t *lossy_string(const char *text)
{
	_cleanup_free_ char *clean = utf8_lossy(text, strlen(text));

	return clean != NULL ? json_string(clean) : NULL;
}

json_t *api_encode_snapshot(const struct snapshot_info *info)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:o, s:I, s:o}", "id", info->id,
			 "sandbox_id", info->sandbox_id, "language_pack", info->language_pack,
			 "vcpus", (int)info->vcpus, "memory_mib", (int)info->memory_mib,
			 "overlay_mib", (int)info->overlay_mib, "created_at",
			 timestamp(info->created_wall_ns), "size_bytes",
			 (json_int_t)info->size_bytes, "labels",
			 sandbox_labels_to_json(&info->labels));
}

json_t *api_encode_sandbox(const struct sandbox_info *info)
{
	json_t *obj = json_pack("{s:s, s:s, s:s, s:o, s:o, s:i, s:i, s:i, s:I, s:I, s:i, s:I}",
				"id", info->id, "language_pack", info->language_pack, "state",
				sandbox_state_name(info->state), "created_at",
				timestamp(info->created_wall_ns), "expires_at",
				timestamp(info->expires_wall_ns), "vcpus", (int)info->vcpus,
				"memory_mib", (int)info->memory_mib, "timeout_s",
				(int)info->timeout_s, "age_ms", (json_int_t)info->age_ms,
				"execs_run", (json_int_t)info->execs_run, "execs_running",
				(int)info->execs_running, "boot_ms", (json_int_t)info->boot_ms);

	if (obj == NULL)
		return NULL;
	json_object_set_new(obj, "overlay_mib", json_integer(info->overlay_mib));
	json_object_set_new(obj, "cpu_weight", json_integer(info->cpu_weight));
	json_object_set_new(obj, "idle_timeout_s", info->idle_timeout_s > 0
							   ? json_integer(info->idle_timeout_s)
							   : json_null());
	json_object_set_new(obj, "last_activity_at", timestamp(info->last_activity_wall_ns));
	json_object_set_new(obj, "labels", sandbox_labels_to_json(&info->labels));
	json_object_set_new(obj, "mounts", sandbox_mounts_json(&info->mounts));
	json_object_set_new(obj, "boot_mode", json_string(info->boot_mode));
	if (info->vmm_pid > 0)
		json_object_set_new(obj, "vmm_pid", json_integer(info->vmm_pid));
	else
		json_object_set_new(obj, "vmm_pid", json_null());
	if (info->failure[0] != '\0')
		json_object_set_new(obj, "failure", lossy_string(info->failure));
	return obj;
}

json_t *api_encode_context(const struct sandbox_context *c)
{
	return json_pack("{s:s, s:s, s:o, s:I, s:I, s:b}", "id", c->id, "language",
			 proto_context_language_name(c->language), "created_at",
			 timestamp(c->created_wall_ns), "execs", (json_int_t)c->execs, "restarts",
			 (json_int_t)c->restarts, "busy", c->busy);
}

json_t *api_encode_exit(const struct proto_exit *e)
{
	json_t *obj = json_pack("{s:i, s:i, s:I, s:b, s:b, s:b, s:b, s:b}", "exit_code",
				e->exit_code, "signal", e->signal, "duration_ms",
				(json_int_t)e->duration_ms, "timed_out", e->timed_out, "oom_killed",
				e->oom_killed, "truncated", e->stdout_truncated || e->stderr_truncated,
				"stdout_truncated", e->stdout_truncated, "stderr_truncated",
				e->stderr_truncated);
	json_t *outcome;

	if (obj != NULL && e->has_timing)
		json_object_set_new(obj, "timing",
				    json_pack("{s:I, s:I, s:I}", "queued_us", (json_int_t)e->queued_us,
					      "spawn_us", (json_int_t)e->spawn_us, "run_us",
					      (json_int_t)e->run_us));
	if (obj == NULL || !e->context.present)
		return obj;
	/* An exec in a context: its final value, rich results and exception (docs/api.md). */
	outcome = proto_outcome_to_json(&e->context, NULL);
	if (outcome == NULL) {
		json_decref(obj);
		return NULL;
	}
	json_object_set(obj, "result", json_object_get(outcome, "result"));
	json_object_set(obj, "results", json_object_get(outcome, "results"));
	json_object_set(obj, "error", json_object_get(outcome, "error"));
	json_object_set(obj, "context_restarted", json_object_get(outcome, "restarted"));
	json_decref(outcome);
	return obj;
}

struct api_stream *api_encode_exec_result(struct channel_exec_result *res,
					  struct ember_error **err)
{
	json_t *members = api_encode_exit(&res->exit);
	struct api_stream_bytes bytes[] = {
		{ "stdout", res->stdout_data, res->stdout_len },
		{ "stderr", res->stderr_data, res->stderr_len },
	};

	/* The stream owns the output buffers from here on, whatever happens. */
	res->stdout_data = NULL;
	res->stderr_data = NULL;
	return api_stream_object(members, bytes, 2, err);
}

json_t *api_encode_error(const char *code, const char *message)
{
	/* Messages may quote client input or guest text that is not UTF-8: never fail to report
	 * an error. */
	json_t *msg = lossy_string(message);

	if (msg == NULL)
		msg = json_string("(out of memory)");
	return json_pack("{s:{s:s, s:o}}", "error", "code", code, "message", msg);
}

json_t *api_encode_processes(const struct proto_process *procs, size_t count)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < count; i++) {
		char state[2] = { procs[i].state, '\0' };

		json_array_append_new(arr, json_pack("{s:i, s:i, s:I, s:s, s:s}", "pid", procs[i].pid,
						     "ppid", procs[i].ppid, "uid",
						     (json_int_t)procs[i].uid, "state", state,
						     "comm", procs[i].comm));
	}
	return arr != NULL ? json_pack("{s:o}", "processes", arr) : NULL;
}

/* "env" and "cwd" of a pack that has them (an imported image's Env and WorkingDir). */
static json_t *encode_pack_environment(json_t *obj, const struct pack *pack)
{
	json_t *env;
	size_t i;

	if (obj == NULL || (pack->envc == 0 && pack->cwd == NULL))
		return obj;
	env = json_array();
	for (i = 0; env != NULL && i < pack->envc; i++)
		json_array_append_new(env, json_string(pack->env[i]));
	if (env == NULL || json_object_set_new(obj, "env", env) < 0 ||
	    (pack->cwd != NULL && json_object_set_new(obj, "cwd", json_string(pack->cwd)) < 0)) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

json_t *api_encode_pack(const struct pack *pack)
{
	json_t *interp = json_array();
	size_t i;

	for (i = 0; interp != NULL && i < pack->interpreter_argc; i++)
		json_array_append_new(interp, json_string(pack->interpreter[i]));
	return encode_pack_environment(json_pack("{s:s, s:s, s:o, s:s, s:s, s:{s:i, s:I, s:i, s:i, s:i}}", "name",
			 pack->name, "description", pack->description, "interpreter", interp,
			 "code", pack->code_argument ? "argument" : "file", "sha256",
			 pack->sha256, "defaults", "exec_timeout_ms",
			 (int)pack->defaults.exec_timeout_ms, "output_limit_bytes",
			 (json_int_t)pack->defaults.output_limit_bytes, "memory_mib",
			 (int)pack->defaults.memory_mib, "vcpus", (int)pack->defaults.vcpus,
			 "overlay_mib", (int)pack->defaults.overlay_mib), pack);
}

json_t *api_encode_catalog_diff(const struct catalog_diff *diff)
{
	static const enum catalog_change order[] = { CATALOG_ADDED, CATALOG_REMOVED,
						     CATALOG_CHANGED, CATALOG_UNCHANGED };
	_cleanup_json_ json_t *obj = json_object();
	size_t c, i;

	for (c = 0; obj != NULL && c < sizeof(order) / sizeof(order[0]); c++) {
		json_t *names = json_array();

		for (i = 0; names != NULL && i < diff->count; i++) {
			if (diff->packs[i].change == order[c])
				json_array_append_new(names, json_string(diff->packs[i].name));
		}
		if (names == NULL || json_object_set_new(obj, catalog_change_name(order[c]),
							 names) < 0)
			return NULL;
	}
	return steal_pointer(&obj);
}

json_t *api_encode_background(const struct procs_info *info)
{
	_cleanup_json_ json_t *obj = json_pack(
		"{s:i, s:s, s:s, s:o, s:o, s:b, s:I, s:I, s:I, s:I}", "pid", info->pid, "state",
		info->state == PROCS_RUNNING ? "running" : "exited", "tag", info->tag,
		"started_at", timestamp(info->started_wall_ns), "ended_at",
		timestamp(info->ended_wall_ns), "stdin_open", info->stdin_open, "stdout_bytes",
		(json_int_t)info->total[0], "stderr_bytes", (json_int_t)info->total[1],
		"stdout_dropped_bytes", (json_int_t)info->dropped[0], "stderr_dropped_bytes",
		(json_int_t)info->dropped[1]);
	json_t *exit;

	if (obj == NULL || info->state == PROCS_RUNNING)
		return steal_pointer(&obj);
	if (info->lost) {
		json_object_set_new(obj, "error", lossy_string(info->error));
		return steal_pointer(&obj);
	}
	exit = api_encode_exit(&info->exit);
	if (exit == NULL || json_object_update(obj, exit) < 0) {
		json_decref(exit);
		return NULL;
	}
	json_decref(exit);
	/* The guest keeps no limit for a background exec: the ring's drops say what was lost. */
	json_object_del(obj, "truncated");
	json_object_del(obj, "stdout_truncated");
	json_object_del(obj, "stderr_truncated");
	json_object_del(obj, "timing"); /* for a program that ran for hours: no news */
	return steal_pointer(&obj);
}

struct api_stream *api_encode_background_output(const struct procs_info *info, uint8_t *out[2],
						const size_t len[2], struct ember_error **err)
{
	struct api_stream_bytes bytes[] = {
		{ "stdout", out[0], len[0] },
		{ "stderr", out[1], len[1] },
	};

	out[0] = out[1] = NULL; /* the stream owns them from here on */
	return api_stream_object(api_encode_background(info), bytes, 2, err);
}
