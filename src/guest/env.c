/* env.c - exec environment assembly. */
#include "guest/env.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static size_t name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');

	return eq != NULL ? (size_t)(eq - entry) : strlen(entry);
}

static bool same_name(const char *a, const char *b)
{
	size_t n = name_len(a);

	return n == name_len(b) && memcmp(a, b, n) == 0;
}

int guest_env_build(const char *const *base, const char *const *request, char ***out,
		    struct ember_error **err)
{
	size_t nbase = 0, nreq = 0, n = 0, i, j;
	char **env;

	while (base[nbase] != NULL)
		nbase++;
	while (request[nreq] != NULL)
		nreq++;
	env = calloc(nbase + nreq + 1, sizeof(*env));
	if (env == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	for (i = 0; i < nbase + nreq; i++) {
		const char *entry = i < nbase ? base[i] : request[i - nbase];

		for (j = 0; j < n; j++) {
			if (same_name(env[j], entry))
				break;
		}
		env[j] = (char *)entry; /* replaces in place, keeping the first position */
		if (j == n)
			n++;
	}
	env[n] = NULL;
	*out = env;
	return 0;
}
