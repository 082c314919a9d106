/* sandboxenv.h - a sandbox's own environment: NAME=value entries given at create that every
 * program of the sandbox starts with (after its pack's, before a request's own), as the E2B
 * API's envVars ask (docs/e2b.md). Its bounds, the one validator, and its JSON form (the
 * record's). Called by the manager, the record and the E2B create decoder. A fixed block, so a
 * struct sandbox stays a plain copy; never holds an entry it did not check. */
#ifndef EMBER_SANDBOX_SANDBOXENV_H
#define EMBER_SANDBOX_SANDBOXENV_H

#include <jansson.h>
#include <stddef.h>

#include "util/error.h"

/* Half of the guest's 64 entries per program (proto/messages.h PROTO_ENV_MAX) leaves a request
 * room for its own; 4 KiB of text is a dozen API keys, and even when every byte of it is
 * escaped in JSON (\u00XX: 6 bytes) it and 32 labels stay inside the record's 64 KiB. */
#define SANDBOX_ENV_MAX 32
#define SANDBOX_ENV_BYTES 4096
#define SANDBOX_ENV_NAME_MAX 128

struct sandbox_env {
	size_t count;
	size_t used;                   /* bytes of block in use */
	char block[SANDBOX_ENV_BYTES]; /* count "NAME=value\0" entries */
};

/* Whether name (len bytes) is an environment variable name every exec path takes:
 * [A-Za-z_][A-Za-z0-9_]*, 1-SANDBOX_ENV_NAME_MAX bytes. The one check of it (the native exec
 * and process bodies, E2B's envs and env_vars, and sandbox_env_add use it). */
bool sandbox_env_name_valid(const char *name, size_t len);

/* Checks and appends name=value: a name of [A-Za-z_][A-Za-z0-9_]* (1-128 bytes), given once; a
 * value of UTF-8 without NUL; at most SANDBOX_ENV_MAX entries in SANDBOX_ENV_BYTES. */
int sandbox_env_add(struct sandbox_env *env, const char *name, const char *value,
		    size_t value_len, struct ember_error **err);
/* Pointers to the entries ("NAME=value", into env->block) in out[0..count). */
size_t sandbox_env_entries(const struct sandbox_env *env, char **out, size_t max);
/* {"NAME": "value", ...} (obj[field]; absent or null: none) into env, which it clears first;
 * errors name the field and the entry. */
int sandbox_env_from_json(json_t *obj, const char *field, struct sandbox_env *env,
			  struct ember_error **err);
/* A new JSON object of the entries (NULL when out of memory). */
json_t *sandbox_env_to_json(const struct sandbox_env *env);

#endif
