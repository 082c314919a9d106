/* connectevents.c - envd's process stream (StartResponse / ConnectResponse, both
 * {"event": ProcessEvent}) as Connect frames, from the events execstream.c produces:
 *   stdout/stderr bytes  → {"event":{"data":{"stdout"|"stderr": base64}}}
 *   start {pid}          → {"event":{"start":{"pid":N}}}
 *   keepalive            → {"event":{"keepalive":{}}}
 *   exit {exit_code, signal, ...} (a process's or an exec's native fields)
 *                        → {"event":{"end":{exitCode, exited, status, error?}}} and the
 *                          end-of-stream frame {}
 *   exit {error} (a process lost with its sandbox) and error {error:{code,message}}
 *                        → the end-of-stream frame with the error (Connect code)
 *   running (a follow without follow; not asked by process.c) → the end-of-stream frame {}
 * EndEvent's status and error read like envd's (Go's os.ProcessState): "exit status 3",
 * "signal: killed"; error is set unless the process exited 0, and CommandExitError's message is
 * that error. */
#include "e2b/streamfmt.h"

#include <stdio.h>
#include <string.h>

#include "e2b/connect.h"
#include "e2b/e2b.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/text.h"

/* One ProcessEvent frame: {"event": {name: value}} (value taken). */
static int event_frame(struct buf *out, const char *name, json_t *value,
		       struct ember_error **err)
{
	_cleanup_json_ json_t *msg = value != NULL ? json_pack("{s:{s:o}}", "event", name, value)
						   : NULL;

	if (msg == NULL)
		return ember_error_oom(err);
	return e2b_connect_frame(out, 0, msg, err);
}

int e2b_connect_events_output(struct buf *out, const char *type, const uint8_t *data, size_t len,
			      struct ember_error **err)
{
	_cleanup_free_ char *b64 = base64_encode(data, len);

	if (b64 == NULL)
		return ember_error_oom(err);
	return event_frame(out, "data", json_pack("{s:s}", strcmp(type, "stderr") == 0 ? "stderr"
										       : "stdout",
						  b64),
			   err);
}

/* Go's names for the signals a process usually dies of (syscall.Signal.String()). */
static const char *signal_text(int sig, char *buf, size_t size)
{
	static const char *const names[] = {
		[1] = "hangup", [2] = "interrupt", [3] = "quit", [4] = "illegal instruction",
		[5] = "trace/breakpoint trap", [6] = "aborted", [7] = "bus error",
		[8] = "floating point exception", [9] = "killed", [10] = "user defined signal 1",
		[11] = "segmentation fault", [12] = "user defined signal 2", [13] = "broken pipe",
		[14] = "alarm clock", [15] = "terminated",
	};

	if (sig > 0 && (size_t)sig < sizeof(names) / sizeof(names[0]))
		return names[sig];
	snprintf(buf, size, "signal %d", sig);
	return buf;
}

/* EndEvent from the native exit fields. */
static json_t *end_event(json_t *members)
{
	int code = (int)json_integer_value(json_object_get(members, "exit_code"));
	int sig = (int)json_integer_value(json_object_get(members, "signal"));
	char status[96], name[32];
	json_t *end;

	if (sig != 0)
		snprintf(status, sizeof(status), "signal: %s", signal_text(sig, name, sizeof(name)));
	else
		snprintf(status, sizeof(status), "exit status %d", code);
	end = json_pack("{s:i, s:b, s:s}", "exitCode", sig != 0 ? -1 : code, "exited", sig == 0,
			"status", status);
	if (end != NULL && (sig != 0 || code != 0))
		json_object_set_new(end, "error", json_string(status));
	return end;
}

/* The Connect code for a native error's code name (api_encode_error's "code"). */
static const char *connect_code_for_name(const char *name)
{
	int kind;

	for (kind = EMBER_E_INTERNAL; kind <= EMBER_E_NO_SPACE; kind++) {
		if (name != NULL && strcmp(ember_error_kind_name(kind), name) == 0)
			return e2b_connect_code(kind);
	}
	return "internal";
}

int e2b_connect_events_object(struct buf *out, const char *type, json_t *members,
			      struct ember_error **err)
{
	json_t *error = json_object_get(members, "error");

	if (strcmp(type, "start") == 0)
		return event_frame(out, "start", json_pack("{s:I}", "pid",
							   json_integer_value(json_object_get(
								   members, "pid"))),
				   err);
	if (strcmp(type, "keepalive") == 0)
		return event_frame(out, "keepalive", json_object(), err);
	if (strcmp(type, "exit") == 0 && json_is_string(error)) /* lost, not ended */
		return e2b_connect_end(out, "unavailable", json_string_value(error), err);
	if (strcmp(type, "exit") == 0 && json_is_true(json_object_get(members, "timed_out")))
		/* killed at its Connect-Timeout-Ms: envd ends the call so, and the SDK raises
		 * TimeoutError (not CommandExitError for "signal: killed") */
		return e2b_connect_end(out, "deadline_exceeded",
				       "the command ran past its timeoutMs and was killed", err);
	if (strcmp(type, "exit") == 0) {
		if (event_frame(out, "end", end_event(members), err) < 0)
			return -1;
		return e2b_connect_end(out, NULL, NULL, err);
	}
	if (strcmp(type, "error") == 0)
		return e2b_connect_end(
			out, connect_code_for_name(json_string_value(json_object_get(error, "code"))),
			json_string_value(json_object_get(error, "message")), err);
	/* "running": the follow ended while the process runs (not a Connect call's choice) */
	return e2b_connect_end(out, NULL, NULL, err);
}
