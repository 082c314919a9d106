/* sandboxenv.c - a sandbox's own environment (see sandboxenv.h). */
#include "sandbox/sandboxenv.h"

#include <string.h>

#include "util/text.h"

#define KIND EMBER_E_INVALID

bool sandbox_env_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > SANDBOX_ENV_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

/* The entry whose name is name (len bytes), or NULL. */
static const char *find(const struct sandbox_env *env, const char *name, size_t len)
{
	size_t off = 0, i;

	for (i = 0; i < env->count; i++) {
		const char *entry = env->block + off;

		if (strncmp(entry, name, len) == 0 && entry[len] == '=')
			return entry;
		off += strlen(entry) + 1;
	}
	return NULL;
}

int sandbox_env_add(struct sandbox_env *env, const char *name, const char *value,
		    size_t value_len, struct ember_error **err)
{
	size_t name_len = strlen(name), need = name_len + 1 + value_len + 1;

	if (!sandbox_env_name_valid(name, name_len))
		return ember_error_set(err, KIND, 0,
				       "`%.64s` is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*, "
				       "at most %d bytes)", name, SANDBOX_ENV_NAME_MAX);
	if (!utf8_valid_text((const uint8_t *)value, value_len))
		return ember_error_set(err, KIND, 0, "the value of `%s` must be UTF-8 text without NUL",
				       name);
	if (find(env, name, name_len) != NULL)
		return ember_error_set(err, KIND, 0, "`%s` is given twice", name);
	if (env->count >= SANDBOX_ENV_MAX || env->used + need > SANDBOX_ENV_BYTES)
		return ember_error_set(err, KIND, 0,
				       "at most %d variables of %d bytes in all per sandbox",
				       SANDBOX_ENV_MAX, SANDBOX_ENV_BYTES);
	memcpy(env->block + env->used, name, name_len);
	env->block[env->used + name_len] = '=';
	memcpy(env->block + env->used + name_len + 1, value, value_len);
	env->block[env->used + need - 1] = '\0';
	env->used += need;
	env->count++;
	return 0;
}

size_t sandbox_env_entries(const struct sandbox_env *env, char **out, size_t max)
{
	size_t off = 0, i;

	for (i = 0; i < env->count && i < max; i++) {
		out[i] = (char *)env->block + off;
		off += strlen(env->block + off) + 1;
	}
	return i;
}

int sandbox_env_from_json(json_t *obj, const char *field, struct sandbox_env *env,
			  struct ember_error **err)
{
	json_t *map = json_object_get(obj, field), *value;
	const char *name;

	env->count = 0;
	env->used = 0;
	if (map == NULL || json_is_null(map))
		return 0;
	if (!json_is_object(map))
		return ember_error_set(err, KIND, 0, "field `%s` must be an object of strings", field);
	json_object_foreach(map, name, value) {
		if (!json_is_string(value))
			return ember_error_set(err, KIND, 0, "field `%s`: the value of `%.64s` must be "
					       "a string", field, name);
		if (sandbox_env_add(env, name, json_string_value(value), json_string_length(value),
				    err) < 0)
			return ember_error_wrap(err, "field `%s`", field);
	}
	return 0;
}

json_t *sandbox_env_to_json(const struct sandbox_env *env)
{
	json_t *obj = json_object();
	size_t off = 0, i;

	for (i = 0; obj != NULL && i < env->count; i++) {
		const char *entry = env->block + off, *eq = strchr(entry, '=');
		char name[SANDBOX_ENV_NAME_MAX + 1];

		memcpy(name, entry, (size_t)(eq - entry));
		name[eq - entry] = '\0';
		if (json_object_set_new(obj, name, json_string(eq + 1)) < 0) {
			json_decref(obj);
			return NULL;
		}
		off += strlen(entry) + 1;
	}
	return obj;
}
