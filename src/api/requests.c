/* requests.c - strict API body decoding. */
#include "api/requests.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/catalog.h"
#include "sandbox/manager.h"
#include "sandbox/sandboxenv.h"
#include "util/cleanup.h"
#include "util/jsonutil.h"

#define KIND EMBER_E_INVALID

static bool only_whitespace(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	}
	return true;
}

/* One optional unsigned field of the create body: 0 when absent. */
static int get_optional_uint(json_t *root, const char *key, uint64_t min, uint64_t max,
			     unsigned *out, struct ember_error **err)
{
	uint64_t v;
	int got = json_get_uint(root, key, false, min, max, &v, KIND, err);

	if (got < 0)
		return -1;
	*out = got == 1 ? (unsigned)v : 0;
	return 0;
}

int api_parse_create(const char *body, size_t len, struct api_create_body *out,
		     struct ember_error **err)
{
	static const char *const keys[] = { "language_pack", "vcpus", "memory_mib", "timeout_s",
					    "overlay_mib", "idle_timeout_s", "labels", "cpu_weight",
					    "network", "mounts", "from_snapshot", NULL };
	json_t *network;
	const char *snap;
	size_t snap_len;
	_cleanup_json_ json_t *root = NULL;
	const char *pack;
	size_t pack_len;
	int got;

	memset(out, 0, sizeof(*out));
	if (only_whitespace(body, len))
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0)
		return -1;
	got = json_get_string(root, "language_pack", false, CATALOG_NAME_MAX, &pack, &pack_len,
			      KIND, err);
	if (got < 0)
		return -1;
	if (got == 1)
		memcpy(out->language_pack, pack, pack_len + 1);
	if (get_optional_uint(root, "vcpus", 1, 64, &out->vcpus, err) < 0 ||
	    get_optional_uint(root, "memory_mib", 64, 65536, &out->memory_mib, err) < 0 ||
	    get_optional_uint(root, "timeout_s", 1, 30u * 24 * 3600, &out->timeout_s, err) < 0 ||
	    get_optional_uint(root, "overlay_mib", 8, 65536, &out->overlay_mib, err) < 0 ||
	    get_optional_uint(root, "idle_timeout_s", 1, 30u * 24 * 3600, &out->idle_timeout_s,
			      err) < 0 ||
	    get_optional_uint(root, "cpu_weight", 1, 10000, &out->cpu_weight, err) < 0 ||
	    sandbox_labels_from_json(root, "labels", &out->labels, err) < 0 ||
	    sandbox_mounts_parse(json_object_get(root, "mounts"), &out->mounts, err) < 0)
		return -1;
	got = json_get_string(root, "from_snapshot", false, sizeof(out->from_snapshot) - 1, &snap,
			      &snap_len, KIND, err);
	if (got < 0)
		return -1;
	if (got == 1)
		memcpy(out->from_snapshot, snap, snap_len + 1);
	network = json_object_get(root, "network");
	if (network == NULL)
		return 0;
	if (!json_is_object(network))
		return ember_error_set(err, KIND, 0, "field `network` must be an object");
	return net_policy_parse(network, NET_MODE_BIT(NET_MODE_NONE) |
				NET_MODE_BIT(NET_MODE_ALLOWLIST) | NET_MODE_BIT(NET_MODE_OPEN),
				&out->network, err);
}

void api_create_body_release(struct api_create_body *body)
{
	net_policy_release(&body->network);
}

int api_parse_network_patch(const char *body, size_t len, struct net_policy *out,
			    bool *has_deny, struct ember_error **err)
{
	_cleanup_json_ json_t *root = NULL;

	memset(out, 0, sizeof(*out));
	*has_deny = false;
	if (json_parse_object(body, len, &root, KIND, err) < 0)
		return -1;
	return net_policy_parse_patch(root, out, has_deny, err);
}

int api_parse_fork(const char *body, size_t len, struct api_fork_body *out,
		   struct ember_error **err)
{
	static const char *const keys[] = { "count", "labels", "timeout_s", NULL };
	_cleanup_json_ json_t *root = NULL;

	memset(out, 0, sizeof(*out));
	out->count = 1;
	if (only_whitespace(body, len))
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    get_optional_uint(root, "count", 1, 64, &out->count, err) < 0 ||
	    get_optional_uint(root, "timeout_s", 1, 30u * 24 * 3600, &out->timeout_s, err) < 0 ||
	    sandbox_labels_from_json(root, "labels", &out->labels, err) < 0)
		return -1;
	if (out->count == 0)
		out->count = 1;
	out->has_labels = json_object_get(root, "labels") != NULL;
	return 0;
}

int api_parse_snapshot(const char *body, size_t len, struct sandbox_labels *labels,
		       struct ember_error **err)
{
	static const char *const keys[] = { "labels", NULL };
	_cleanup_json_ json_t *root = NULL;

	memset(labels, 0, sizeof(*labels));
	if (only_whitespace(body, len))
		return 0;
	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0)
		return -1;
	return sandbox_labels_from_json(root, "labels", labels, err);
}

int api_parse_timeout(const char *body, size_t len, unsigned *timeout_s,
		      struct ember_error **err)
{
	static const char *const keys[] = { "timeout_s", NULL };
	_cleanup_json_ json_t *root = NULL;
	uint64_t v;

	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0 ||
	    json_get_uint(root, "timeout_s", true, 1, 30u * 24 * 3600, &v, KIND, err) < 0)
		return -1;
	*timeout_s = (unsigned)v;
	return 0;
}

static int parse_state(const char *text, enum sandbox_state *out, struct ember_error **err)
{
	static const enum sandbox_state states[] = { SANDBOX_BOOTING, SANDBOX_READY,
						     SANDBOX_DESTROYING, SANDBOX_FAILED,
						     SANDBOX_PAUSING, SANDBOX_PAUSED,
						     SANDBOX_RESUMING };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(states); i++) {
		if (strcmp(text, sandbox_state_name(states[i])) == 0) {
			*out = states[i];
			return 0;
		}
	}
	return ember_error_set(err, KIND, 0,
			       "query parameter `state` must be one of booting, ready, destroying, "
			       "failed, pausing, paused, resuming (got `%.64s`)", text);
}

/* One `label` term: KEY or KEY=VALUE, each checked like a create's labels. */
static int parse_label_term(const char *text, struct api_list_filter *out,
			    struct ember_error **err)
{
	const char *eq = strchr(text, '=');
	size_t klen = eq != NULL ? (size_t)(eq - text) : strlen(text);
	char *key;

	if (out->nterms >= SANDBOX_LABELS_MAX)
		return ember_error_set(err, KIND, 0, "at most %d `label` query parameters",
				       SANDBOX_LABELS_MAX);
	if (klen == 0 || klen > SANDBOX_LABEL_KEY_MAX)
		return ember_error_set(err, KIND, 0,
				       "query parameter `label` must be KEY or KEY=VALUE with a key of "
				       "1 to %d bytes (got `%.64s`)", SANDBOX_LABEL_KEY_MAX, text);
	key = out->term_keys[out->nterms];
	memcpy(key, text, klen);
	key[klen] = '\0';
	if (sandbox_label_check_key(key, err) < 0 ||
	    (eq != NULL && sandbox_label_check_value(key, eq + 1, strlen(eq + 1), err) < 0))
		return ember_error_wrap(err, "query parameter `label`");
	out->terms[out->nterms].key = key;
	out->terms[out->nterms].value = eq != NULL ? eq + 1 : NULL;
	out->nterms++;
	return 0;
}

int api_parse_list_query(const struct api_query *query, struct api_list_filter *out,
			 struct ember_error **err)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (query->too_many)
		return ember_error_set(err, KIND, 0, "more than %d query parameters",
				       API_QUERY_PAIRS_MAX);
	if (query->has_nul)
		return ember_error_set(err, KIND, 0, "a query parameter contains NUL (%%00)");
	for (i = 0; i < query->count; i++) {
		const char *key = query->pairs[i].key, *value = query->pairs[i].value;
		bool is_label = strcmp(key, "label") == 0, is_state = strcmp(key, "state") == 0;

		if (!is_label && !is_state)
			return ember_error_set(err, KIND, 0,
					       "unknown query parameter `%.64s` (GET /sandboxes takes "
					       "label and state)", key);
		if (value == NULL)
			return ember_error_set(err, KIND, 0, "query parameter `%s` needs a value",
					       key);
		if (is_state && out->has_state)
			return ember_error_set(err, KIND, 0, "query parameter `state` is given twice");
		if (is_state && parse_state(value, &out->state, err) < 0)
			return -1;
		out->has_state = out->has_state || is_state;
		if (is_label && parse_label_term(value, out, err) < 0)
			return -1;
	}
	return 0;
}

bool api_list_filter_match(const struct api_list_filter *filter, const struct sandbox_info *info)
{
	if (filter->has_state && info->state != filter->state)
		return false;
	return sandbox_labels_match(&info->labels, filter->terms, filter->nterms);
}

static int parse_env_into(json_t *root, char **out_env, size_t *out_envc,
			  struct ember_error **err);

static int parse_env(json_t *root, struct api_exec_body *out, struct ember_error **err)
{
	return parse_env_into(root, out->env, &out->envc, err);
}

/* env {"NAME": "value"} into out_env[] as malloc'd "NAME=value" strings (*out_envc of them). */
static int parse_env_into(json_t *root, char **out_env, size_t *out_envc,
			  struct ember_error **err)
{
	json_t *env = json_object_get(root, "env"), *value;
	const char *name;

	if (env == NULL || json_is_null(env))
		return 0;
	if (!json_is_object(env))
		return ember_error_set(err, KIND, 0, "field `env` must be an object of strings");
	if (json_object_size(env) > PROTO_ENV_MAX)
		return ember_error_set(err, KIND, 0, "field `env` has more than %d entries",
				       PROTO_ENV_MAX);
	json_object_foreach(env, name, value) {
		const char *s = json_string_value(value);
		size_t n = json_string_length(value);

		if (!sandbox_env_name_valid(name, strlen(name)))
			return ember_error_set(err, KIND, 0,
					       "field `env`: `%.64s` is not a valid variable name "
					       "([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)", name,
					       API_ENV_NAME_MAX);
		if (s == NULL || strlen(s) != n || strlen(name) + 1 + n > PROTO_STRING_MAX)
			return ember_error_set(err, KIND, 0,
					       "field `env.%s` must be a string without NUL, at most "
					       "%d bytes with its name", name, PROTO_STRING_MAX);
		if (asprintf(&out_env[*out_envc], "%s=%s", name, s) < 0) {
			out_env[*out_envc] = NULL;
			return ember_error_set(err, EMBER_E_INTERNAL, 0, "out of memory");
		}
		(*out_envc)++;
	}
	return 0;
}

int api_parse_exec(const char *body, size_t len, struct api_exec_body *out,
		   struct ember_error **err)
{
	static const char *const keys[] = { "code", "stdin", "timeout_ms", "env",
					    "max_output_bytes", "stream", "context_id",
					    "fresh_interpreter", NULL };
	uint64_t timeout;
	json_t *env;
	int got;

	memset(out, 0, sizeof(*out));
	if (json_parse_object(body, len, &out->root, KIND, err) < 0)
		return -1;
	if (json_check_keys(out->root, keys, KIND, err) < 0)
		goto fail;
	if (json_get_string(out->root, "code", true, PROTO_CODE_MAX, &out->code, &out->code_len,
			    KIND, err) < 0) {
		if (json_is_string(json_object_get(out->root, "code")) && err != NULL &&
		    *err != NULL && json_string_length(json_object_get(out->root, "code")) >
					    PROTO_CODE_MAX)
			(*err)->kind = EMBER_E_TOO_LARGE;
		goto fail;
	}
	got = json_get_string(out->root, "stdin", false, API_STDIN_MAX, &out->stdin_text,
			      &out->stdin_len, KIND, err);
	if (got < 0) {
		if (json_is_string(json_object_get(out->root, "stdin")) && err != NULL &&
		    *err != NULL && json_string_length(json_object_get(out->root, "stdin")) >
					    API_STDIN_MAX)
			(*err)->kind = EMBER_E_TOO_LARGE;
		goto fail;
	}
	out->has_stdin = got == 1;
	got = json_get_uint(out->root, "timeout_ms", false, 1, PROTO_TIMEOUT_MS_MAX, &timeout,
			    KIND, err);
	if (got < 0)
		goto fail;
	out->timeout_ms = got == 1 ? (uint32_t)timeout : 0;
	got = json_get_uint(out->root, "max_output_bytes", false, 0, PROTO_OUTPUT_LIMIT_MAX,
			    &out->max_output_bytes, KIND, err);
	if (got < 0)
		goto fail;
	out->has_max_output = got == 1;
	if (json_get_bool(out->root, "stream", false, &out->stream, KIND, err) < 0 ||
	    json_get_bool(out->root, "fresh_interpreter", false, &out->fresh_interpreter, KIND,
			  err) < 0)
		goto fail;
	got = json_get_string(out->root, "context_id", false, PROTO_CONTEXT_ID_MAX,
			      &out->context_id, NULL, KIND, err);
	if (got < 0 || (got == 1 && !proto_context_id_valid(out->context_id))) {
		ember_error_set(err, KIND, 0, "field `context_id` must be a context id (ctx_...)");
		goto fail;
	}
	env = json_object_get(out->root, "env");
	if (out->context_id != NULL &&
	    (out->has_stdin || out->fresh_interpreter || (env != NULL && !json_is_null(env)))) {
		ember_error_set(err, KIND, 0, "field `context_id` cannot be combined with %s",
				out->has_stdin ? "`stdin` (a context reads no input)"
				: out->fresh_interpreter ? "`fresh_interpreter`"
							 : "`env` (a context keeps the environment "
							   "it was created with: set os.environ "
							   "or export in it)");
		goto fail;
	}
	if (parse_env(out->root, out, err) < 0)
		goto fail;
	return 0;
fail:
	api_exec_body_release(out);
	return -1;
}

void api_exec_body_release(struct api_exec_body *body)
{
	size_t i;

	for (i = 0; i < body->envc; i++)
		free(body->env[i]);
	json_decref(body->root);
	memset(body, 0, sizeof(*body));
}

/* "cmd": 1 to PROTO_ARGV_MAX non-empty strings without NUL (borrowed from root). */
static int parse_cmd(json_t *root, struct api_process_body *out, struct ember_error **err)
{
	json_t *cmd = json_object_get(root, "cmd");
	size_t i;

	if (!json_is_array(cmd) || json_array_size(cmd) == 0 ||
	    json_array_size(cmd) > PROTO_ARGV_MAX)
		return ember_error_set(err, KIND, 0, "field `cmd` must be an array of 1 to %d "
				       "strings", PROTO_ARGV_MAX);
	for (i = 0; i < json_array_size(cmd); i++) {
		json_t *v = json_array_get(cmd, i);
		const char *s = json_string_value(v);

		if (s == NULL || s[0] == '\0' || strlen(s) != json_string_length(v) ||
		    strlen(s) > PROTO_STRING_MAX)
			return ember_error_set(err, KIND, 0,
					       "field `cmd` entry %zu must be a non-empty string "
					       "without NUL of at most %d bytes", i, PROTO_STRING_MAX);
		out->cmd[i] = (char *)s;
	}
	out->cmdc = i;
	return 0;
}

int api_parse_process(const char *body, size_t len, struct api_process_body *out,
		      struct ember_error **err)
{
	static const char *const keys[] = { "code", "cmd", "cwd", "env", "stdin", "tag", NULL };
	bool has_code, has_cmd;
	int got;

	memset(out, 0, sizeof(*out));
	if (json_parse_object(body, len, &out->root, KIND, err) < 0)
		return -1;
	if (json_check_keys(out->root, keys, KIND, err) < 0)
		goto fail;
	/* null is the same as absent (docs/api.md) */
	has_code = !json_is_null(json_object_get(out->root, "code")) &&
		   json_object_get(out->root, "code") != NULL;
	has_cmd = !json_is_null(json_object_get(out->root, "cmd")) &&
		  json_object_get(out->root, "cmd") != NULL;
	if (has_code == has_cmd) {
		ember_error_set(err, KIND, 0, "exactly one of fields `code` and `cmd` is required");
		goto fail;
	}
	if (has_code && json_get_string(out->root, "code", true, PROTO_CODE_MAX, &out->code,
					&out->code_len, KIND, err) < 0)
		goto fail;
	if (has_cmd && parse_cmd(out->root, out, err) < 0)
		goto fail;
	got = json_get_string(out->root, "cwd", false, PROTO_STRING_MAX, &out->cwd, NULL, KIND,
			      err);
	if (got < 0)
		goto fail;
	if (got == 1 && out->cwd[0] == '\0') {
		ember_error_set(err, KIND, 0, "field `cwd` must not be empty");
		goto fail;
	}
	got = json_get_string(out->root, "tag", false, API_TAG_MAX, &out->tag, NULL, KIND, err);
	if (got < 0 || json_get_bool(out->root, "stdin", false, &out->has_stdin, KIND, err) < 0 ||
	    parse_env_into(out->root, out->env, &out->envc, err) < 0)
		goto fail;
	return 0;
fail:
	api_process_body_release(out);
	return -1;
}

int api_parse_context(const char *body, size_t len, struct api_context_body *out,
		      struct ember_error **err)
{
	static const char *const keys[] = { "language", "cwd", "env", NULL };
	const char *language = NULL;
	int got;

	memset(out, 0, sizeof(*out));
	out->language = PROTO_LANG_NONE;
	if (len == 0)
		return 0;
	if (json_parse_object(body, len, &out->root, KIND, err) < 0)
		return -1;
	if (json_check_keys(out->root, keys, KIND, err) < 0 ||
	    json_get_string(out->root, "language", false, 16, &language, NULL, KIND, err) < 0)
		goto fail;
	if (language != NULL &&
	    (out->language = proto_context_language_parse(language)) == PROTO_LANG_NONE) {
		ember_error_set(err, KIND, 0,
				"field `language` must be \"python\", \"node\" or \"shell\"");
		goto fail;
	}
	got = json_get_string(out->root, "cwd", false, PROTO_STRING_MAX, &out->cwd, NULL, KIND,
			      err);
	if (got < 0)
		goto fail;
	if (got == 1 && out->cwd[0] == '\0') {
		ember_error_set(err, KIND, 0, "field `cwd` must not be empty");
		goto fail;
	}
	if (parse_env_into(out->root, out->env, &out->envc, err) < 0)
		goto fail;
	return 0;
fail:
	api_context_body_release(out);
	return -1;
}

void api_context_body_release(struct api_context_body *body)
{
	size_t i;

	for (i = 0; i < body->envc; i++)
		free(body->env[i]);
	json_decref(body->root);
	memset(body, 0, sizeof(*body));
}

void api_process_body_release(struct api_process_body *body)
{
	size_t i;

	for (i = 0; i < body->envc; i++)
		free(body->env[i]);
	json_decref(body->root);
	memset(body, 0, sizeof(*body));
}

int api_parse_signal(const char *body, size_t len, int *sig, struct ember_error **err)
{
	static const struct {
		const char *name;
		int number;
	} names[] = {
		{ "TERM", SIGTERM }, { "KILL", SIGKILL }, { "INT", SIGINT },   { "HUP", SIGHUP },
		{ "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "STOP", SIGSTOP },
		{ "CONT", SIGCONT },
	};
	static const char *const keys[] = { "signal", NULL };
	_cleanup_json_ json_t *root = NULL;
	json_t *v;
	const char *name;
	size_t i;

	if (json_parse_object(body, len, &root, KIND, err) < 0 ||
	    json_check_keys(root, keys, KIND, err) < 0)
		return -1;
	v = json_object_get(root, "signal");
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 1 || json_integer_value(v) > 64)
			return ember_error_set(err, KIND, 0, "field `signal` must be 1 to 64");
		*sig = (int)json_integer_value(v);
		return 0;
	}
	name = json_string_value(v);
	if (name == NULL)
		return ember_error_set(err, KIND, 0, "field `signal` is required: a name such as "
				       "\"TERM\" or a number");
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcmp(name, names[i].name) == 0) {
			*sig = names[i].number;
			return 0;
		}
	}
	return ember_error_set(err, KIND, 0, "field `signal`: unknown signal `%.32s` (TERM KILL "
			       "INT HUP QUIT USR1 USR2 STOP CONT, or a number)", name);
}

int api_parse_pid(const char *text, int32_t *pid, struct ember_error **err)
{
	uint64_t v = 0;
	const char *p;

	for (p = text; *p >= '0' && *p <= '9' && v <= INT32_MAX; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (p == text || *p != '\0' || v < 1 || v > INT32_MAX || text[0] == '0')
		return ember_error_set(err, EMBER_E_NOT_FOUND, 0, "no background process `%.32s`",
				       text);
	*pid = (int32_t)v;
	return 0;
}

bool api_valid_sandbox_id(const char *id)
{
	size_t i;

	if (strncmp(id, SANDBOX_ID_PREFIX, 3) != 0 || strlen(id) != SANDBOX_ID_LEN)
		return false;
	for (i = 3; i < SANDBOX_ID_LEN; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return true;
}
