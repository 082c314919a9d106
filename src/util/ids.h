/* ids.h - unguessable identifiers from the kernel CSPRNG ("sb_" + 16 bytes of hex).
 * Used for sandbox ids; ids end up in paths, so only [a-z0-9_] ever appears. */
#ifndef EMBER_UTIL_IDS_H
#define EMBER_UTIL_IDS_H

#include <stddef.h>

#include "util/error.h"

#define ID_RANDOM_BYTES 16

/* out gets prefix + 2*ID_RANDOM_BYTES hex digits; size must fit them. */
int id_generate(const char *prefix, char *out, size_t size, struct ember_error **err);

#endif
