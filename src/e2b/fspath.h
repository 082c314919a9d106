/* fspath.h - paths as envd takes them: `~`, `~/x` and relative paths are under the E2B user's
 * home, and every path is made absolute and clean (no `.`, `..` or repeated `/`), so the SDKs
 * get back the paths envd would answer (EntryInfo.path, the upload's `path`).
 * Used by filesystem.c and upload.c; pure, unit-tested by tests/unit/test_e2b_fspath.c. Never
 * follows a symlink or asks the guest: the guest resolves the result as the sandbox user. */
#ifndef EMBER_E2B_FSPATH_H
#define EMBER_E2B_FSPATH_H

#include "proto/fsmsg.h"
#include "util/error.h"

/* The home of the SDKs' default user `user` (the sandbox user's alias in our packs). */
#define E2B_HOME "/home/user"

/* out: PROTO_PATH_MAX + 1 bytes. Empty is the home (as envd). NUL-free by construction of C
 * strings; over PROTO_PATH_MAX bytes once resolved is EMBER_E_INVALID. */
int e2b_path_resolve(const char *path, char *out, struct ember_error **err);

/* The last component of a resolved path ("/" for the root). */
const char *e2b_path_base(const char *resolved);

/* The parent of a resolved path into out (PROTO_PATH_MAX + 1 bytes); "/" for "/". */
void e2b_path_dir(const char *resolved, char *out);

#endif
