/* script.c - ember-vm's script steps: decode a step, ask the agent, encode its answer. */
#include "script.h"

#include <stdlib.h>

#include "api/encode.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

/* A step waits this long for a ps or ping answer. */
#define STEP_ANSWER_MS 10000
#define STDIN_MAX (1 << 20)
/* The daemon's default --max-processes, so scripts see what sandboxes see. */
#define SCRIPT_MAX_PROCESSES 256

#define _cleanup_exec_result_ __attribute__((cleanup(channel_exec_result_release)))

/* Fills req from an exec step's spec; req borrows every string from spec, env from env[]. */
static int exec_request_from_spec(json_t *spec, const struct pack *pack, char **env,
				  struct channel_exec_request *req, struct ember_error **err)
{
	static const char *const keys[] = { "code", "stdin", "timeout_ms", "output_limit", "env",
					    NULL };
	const char *stdin_text = NULL;
	uint64_t timeout = pack->defaults.exec_timeout_ms, limit = pack->defaults.output_limit_bytes;
	json_t *env_arr;
	size_t i;

	*req = (struct channel_exec_request){ .argv = pack->interpreter,
					      .argc = pack->interpreter_argc, .env = env,
					      .code_argument = pack->code_argument,
					      .max_processes = SCRIPT_MAX_PROCESSES };
	if (!json_is_object(spec) || json_check_keys(spec, keys, EMBER_E_INVALID, err) < 0 ||
	    json_get_string(spec, "code", true, PROTO_CODE_MAX, &req->code, &req->code_len,
			    EMBER_E_INVALID, err) < 0 ||
	    json_get_string(spec, "stdin", false, STDIN_MAX, &stdin_text, &req->stdin_len,
			    EMBER_E_INVALID, err) < 0 ||
	    json_get_uint(spec, "timeout_ms", false, 1, PROTO_TIMEOUT_MS_MAX, &timeout,
			  EMBER_E_INVALID, err) < 0 ||
	    json_get_uint(spec, "output_limit", false, 0, PROTO_OUTPUT_LIMIT_MAX, &limit,
			  EMBER_E_INVALID, err) < 0)
		return -1;
	if (pack->code_argument && req->code_len > PROTO_CODE_ARG_MAX)
		return ember_error_set(err, EMBER_E_INVALID, 0, "`code` must be at most %u bytes: "
				       "pack `%s` passes it as an argument", PROTO_CODE_ARG_MAX,
				       pack->name);
	req->has_stdin = stdin_text != NULL;
	req->stdin_data = (const uint8_t *)stdin_text;
	req->timeout_ms = (uint32_t)timeout;
	req->output_limit = limit;
	env_arr = json_object_get(spec, "env");
	if (env_arr != NULL && (!json_is_array(env_arr) || json_array_size(env_arr) > PROTO_ENV_MAX))
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "`env` must be an array of NAME=value");
	for (i = 0; env_arr != NULL && i < json_array_size(env_arr); i++) {
		env[i] = (char *)json_string_value(json_array_get(env_arr, i));
		if (env[i] == NULL)
			return ember_error_set(err, EMBER_E_INVALID, 0,
					       "`env` entries must be strings");
	}
	req->envc = env_arr != NULL ? json_array_size(env_arr) : 0;
	return 0;
}

static json_t *exec_result_json(const struct channel_exec_result *res, int64_t round_trip_us,
				struct ember_error **err)
{
	_cleanup_json_ json_t *out = json_pack(
		"{s:i, s:i, s:b, s:I, s:I, s:b, s:b, s:I, s:I}", "exit_code", res->exit.exit_code,
		"signal", res->exit.signal, "timed_out", res->exit.timed_out, "duration_ms",
		(json_int_t)res->exit.duration_ms, "round_trip_us", (json_int_t)round_trip_us,
		"stdout_truncated", res->exit.stdout_truncated, "stderr_truncated",
		res->exit.stderr_truncated, "stdout_len", (json_int_t)res->stdout_len, "stderr_len",
		(json_int_t)res->stderr_len);

	if (out == NULL ||
	    json_set_bytes(out, "stdout", res->stdout_data, res->stdout_len, err) < 0 ||
	    json_set_bytes(out, "stderr", res->stderr_data, res->stderr_len, err) < 0)
		return NULL;
	return steal_pointer(&out);
}

static json_t *run_exec(struct channel *ch, const struct pack *pack, json_t *spec,
			struct ember_error **err)
{
	struct channel_exec_request req;
	_cleanup_exec_result_ struct channel_exec_result res = { 0 };
	char *env[PROTO_ENV_MAX];
	int64_t t0;

	if (exec_request_from_spec(spec, pack, env, &req, err) < 0)
		return NULL;
	t0 = time_mono_us();
	if (channel_exec(ch, &req, &res, err) < 0)
		return NULL;
	return exec_result_json(&res, time_mono_us() - t0, err);
}

static json_t *run_ps(struct channel *ch, struct ember_error **err)
{
	_cleanup_free_ struct proto_process *procs = NULL;
	size_t count = 0;

	if (channel_ps(ch, time_mono_ms() + STEP_ANSWER_MS, &procs, &count, err) < 0)
		return NULL;
	return api_encode_processes(procs, count);
}

static json_t *run_ping(struct channel *ch, struct ember_error **err)
{
	int64_t t0 = time_mono_us();

	if (channel_ping(ch, time_mono_ms() + STEP_ANSWER_MS, err) < 0)
		return NULL;
	return json_pack("{s:I}", "round_trip_us", (json_int_t)(time_mono_us() - t0));
}

static json_t *run_step(struct channel *ch, const struct pack *pack, json_t *step)
{
	struct ember_error *err = NULL;
	json_t *result = NULL, *spec;

	if (!json_is_object(step) || json_object_size(step) != 1)
		ember_error_set(&err, EMBER_E_INVALID, 0, "each step must be an object with one key");
	else if ((spec = json_object_get(step, "exec")) != NULL)
		result = run_exec(ch, pack, spec, &err);
	else if (json_object_get(step, "ps") != NULL)
		result = run_ps(ch, &err);
	else if (json_object_get(step, "ping") != NULL)
		result = run_ping(ch, &err);
	else
		ember_error_set(&err, EMBER_E_INVALID, 0, "unknown step (exec, ps, ping)");
	if (result == NULL) {
		result = json_pack("{s:{s:s, s:s}}", "error", "code",
				   ember_error_kind_name(err != NULL ? err->kind : EMBER_E_INTERNAL),
				   "message", err != NULL ? err->message : "out of memory");
		ember_error_free(&err);
	}
	return result;
}

json_t *script_run_steps(struct channel *ch, const struct pack *pack, json_t *steps,
			 unsigned *failed)
{
	json_t *results = json_array();
	size_t i;

	*failed = 0;
	for (i = 0; results != NULL && i < json_array_size(steps); i++) {
		json_t *r = run_step(ch, pack, json_array_get(steps, i));

		if (json_object_get(r, "error") != NULL)
			(*failed)++;
		json_array_append_new(results, r);
	}
	return results;
}
