/* interpreq.c - the code interpreter's request bodies, decoded strictly. */
#include "e2b/interpreq.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "sandbox/sandboxenv.h"
#include "util/jsonutil.h"

#define KIND EMBER_E_INVALID

static const struct {
	const char *name;
	enum proto_context_language language;
} language_names[] = {
	{ "python", PROTO_LANG_PYTHON }, { "javascript", PROTO_LANG_NODE },
	{ "js", PROTO_LANG_NODE },       { "bash", PROTO_LANG_SHELL },
	{ "sh", PROTO_LANG_SHELL },      { "shell", PROTO_LANG_SHELL },
};

enum proto_context_language e2b_language_parse(const char *name, size_t len)
{
	size_t i;

	while (len > 0 && isspace((unsigned char)name[0])) {
		name++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)name[len - 1]))
		len--;
	if (len == 0)
		return PROTO_LANG_PYTHON;
	for (i = 0; i < sizeof(language_names) / sizeof(language_names[0]); i++) {
		if (strlen(language_names[i].name) == len &&
		    strncasecmp(language_names[i].name, name, len) == 0)
			return language_names[i].language;
	}
	return PROTO_LANG_NONE;
}

const char *e2b_language_name(enum proto_context_language language)
{
	switch (language) {
	case PROTO_LANG_NODE: return "javascript";
	case PROTO_LANG_SHELL: return "bash";
	case PROTO_LANG_PYTHON:
	case PROTO_LANG_NONE: break;
	}
	return "python";
}

/* A string member that may be absent or null: 1 present, 0 not, -1 bad. */
static int optional_string(json_t *root, const char *key, size_t max, const char **out,
			   size_t *len, struct ember_error **err)
{
	if (json_is_null(json_object_get(root, key)))
		return 0;
	return json_get_string(root, key, false, max, out, len, KIND, err);
}

static int language_member(json_t *root, enum proto_context_language *language,
			   const char **name, struct ember_error **err)
{
	const char *s = NULL;
	size_t n = 0;
	int got = optional_string(root, "language", 64, &s, &n, err);

	*language = PROTO_LANG_NONE;
	if (got < 0)
		return -1;
	if (got == 0)
		return 0;
	*language = e2b_language_parse(s, n);
	if (name != NULL)
		*name = s;
	if (*language == PROTO_LANG_NONE)
		return ember_error_set(err, KIND, 0,
				       "language `%.64s` is not supported by emberd: python, "
				       "javascript (a node sandbox) or bash",
				       s);
	return 0;
}

static int env_vars_member(json_t *root, json_t **out, struct ember_error **err)
{
	json_t *env = json_object_get(root, "env_vars"), *value;
	const char *name;

	*out = NULL;
	if (env == NULL || json_is_null(env))
		return 0;
	if (!json_is_object(env))
		return ember_error_set(err, KIND, 0, "field `env_vars` must be an object of strings");
	if (json_object_size(env) > E2B_ENV_VARS_MAX)
		return ember_error_set(err, KIND, 0, "field `env_vars` has more than %d entries",
				       E2B_ENV_VARS_MAX);
	json_object_foreach(env, name, value) {
		const char *s = json_string_value(value);
		size_t n = json_string_length(value);

		if (!sandbox_env_name_valid(name, strlen(name)))
			return ember_error_set(err, KIND, 0,
					       "field `env_vars`: `%.64s` is not a valid variable "
					       "name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
					       name, SANDBOX_ENV_NAME_MAX);
		if (s == NULL || strlen(s) != n || strlen(name) + 1 + n > PROTO_STRING_MAX)
			return ember_error_set(err, KIND, 0,
					       "field `env_vars.%s` must be a string without NUL, at "
					       "most %d bytes with its name",
					       name, PROTO_STRING_MAX);
	}
	if (json_object_size(env) > 0)
		*out = env;
	return 0;
}

int e2b_parse_execute(const char *body, size_t len, struct e2b_execute_body *out,
		      struct ember_error **err)
{
	static const char *const keys[] = { "code", "context_id", "language", "env_vars", NULL };
	int got;

	memset(out, 0, sizeof(*out));
	if (json_parse_object(body, len, &out->root, KIND, err) < 0 ||
	    json_check_keys(out->root, keys, KIND, err) < 0 ||
	    json_get_string(out->root, "code", true, E2B_CODE_MAX, &out->code, &out->code_len,
			    KIND, err) < 0)
		goto fail;
	got = optional_string(out->root, "context_id", E2B_CONTEXT_ID_MAX, &out->context_id, NULL,
			      err);
	if (got < 0) {
		ember_error_free(err);
		/* An id longer than any of ours names no context: the SDK's NotFound. */
		ember_error_set(err, EMBER_E_NOT_FOUND, 0, "Context not found");
		goto fail;
	}
	if (got == 1 && out->context_id[0] == '\0')
		out->context_id = NULL; /* E2B's server treats "" as no context */
	if (language_member(out->root, &out->language, &out->language_name, err) < 0 ||
	    env_vars_member(out->root, &out->env_vars, err) < 0)
		goto fail;
	if (out->context_id != NULL && out->language != PROTO_LANG_NONE) {
		ember_error_set(err, KIND, 0, "Only one of context_id or language can be provided");
		goto fail;
	}
	return 0;
fail:
	e2b_execute_body_release(out);
	return -1;
}

void e2b_execute_body_release(struct e2b_execute_body *body)
{
	json_decref(body->root);
	memset(body, 0, sizeof(*body));
}

int e2b_parse_context_create(const char *body, size_t len, struct e2b_context_body *out,
			     struct ember_error **err)
{
	static const char *const keys[] = { "language", "cwd", NULL };
	int got;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (json_parse_object(body, len, &out->root, KIND, err) < 0 ||
	    json_check_keys(out->root, keys, KIND, err) < 0 ||
	    language_member(out->root, &out->language, NULL, err) < 0)
		goto fail;
	got = optional_string(out->root, "cwd", PROTO_STRING_MAX, &out->cwd, NULL, err);
	if (got < 0)
		goto fail;
	if (got == 1 && out->cwd[0] == '\0')
		out->cwd = NULL;
	return 0;
fail:
	e2b_context_body_release(out);
	return -1;
}

void e2b_context_body_release(struct e2b_context_body *body)
{
	json_decref(body->root);
	memset(body, 0, sizeof(*body));
}
