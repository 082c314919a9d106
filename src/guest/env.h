/* env.h - the environment of an exec: a fixed base plus the request's entries.
 * Called by exec.c before spawning; pure, unit-tested.
 * Never copies strings or lets one name appear twice: the result points into its inputs.
 *
 * Policy: request entries override base entries of the same name (PATH included: the program
 * is the user's own code and may set its own PATH). The interpreter itself is always resolved
 * with the base PATH (spawn.c), so a request env cannot redirect which binary runs. */
#ifndef EMBER_GUEST_ENV_H
#define EMBER_GUEST_ENV_H

#include <stddef.h>

#include "util/error.h"

/* base and request are NULL-terminated "NAME=value" lists; *out is a NULL-terminated malloc'd
 * array (free() only the array). Later request entries win over earlier ones. */
int guest_env_build(const char *const *base, const char *const *request, char ***out,
		    struct ember_error **err);

#endif
