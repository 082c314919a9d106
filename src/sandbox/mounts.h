/* mounts.h - host directories a sandbox was created with (`"mounts"`, docs/api.md "Mounts"):
 * the request's syntax, the operator's rules (--allow-mount), and the checks made again right
 * before the VMM gets them.
 * Used by the API (parsing: pure, fuzzed through fuzz_api_requests) and by the manager (policy,
 * then opening each directory for the driver). Owns nothing beyond the structs it fills: a
 * struct sandbox_mounts is a value, copied into the sandbox and freed with it. */
#ifndef EMBER_SANDBOX_MOUNTS_H
#define EMBER_SANDBOX_MOUNTS_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto/messages.h"
#include "util/error.h"

#define SANDBOX_MOUNTS_MAX 8          /* == PROTO_MOUNTS_MAX == VMM_MOUNTS_MAX */
#define SANDBOX_MOUNT_HOST_MAX 1023   /* bytes of a host path as given and as resolved */
#define MOUNT_ALLOW_MAX 16            /* --allow-mount directories */
/* Largest squashfs image a Firecracker sandbox's read-only mount may become (the directory's
 * file bytes, counted before it is built), unless --max-mount-image-mib says otherwise. */
#define MOUNT_IMAGE_MIB_DEFAULT 1024u

struct sandbox_mount {
	char host[SANDBOX_MOUNT_HOST_MAX + 1];   /* as requested; resolved by mount_policy_apply */
	char guest[PROTO_MOUNT_PATH_MAX + 1];
	bool rw;
	bool has_uid, has_gid;                  /* given in the request */
	uid_t uid;                              /* resolved: the host owner of what the guest */
	gid_t gid;                              /* writes (default: the directory's owner) */
	dev_t dev;                              /* the directory mount_policy_apply checked */
	ino_t ino;                              /* (not in records: 0 after a restart) */
};

struct sandbox_mounts {
	struct sandbox_mount m[SANDBOX_MOUNTS_MAX];
	size_t n;
};

/* The request's `mounts` array (NULL or absent: none): [{"host": "/abs", "guest": "/abs",
 * "mode": "ro"|"rw", "uid"?: N, "gid"?: N}], at most SANDBOX_MOUNTS_MAX; host absolute, guest
 * as proto_mount_path_valid(); uid/gid 1..2^31-2; unknown keys refused; no two guest paths
 * equal or one under another. Touches no file. Errors are EMBER_E_INVALID naming the field
 * ("field `mounts[1].guest` ..."). */
int sandbox_mounts_parse(json_t *array, struct sandbox_mounts *out, struct ember_error **err);

/* What sandbox_mounts_json() wrote (a sandbox's record): the same, with uid and gid required
 * and 0 allowed (a read-only mount of a root-owned directory). */
int sandbox_mounts_from_json(json_t *array, struct sandbox_mounts *out, struct ember_error **err);

/* The operator's rules: the directories mounts may come from (--allow-mount, resolved at
 * startup) and the ones never mountable whatever they are under (the run dir, the images dir,
 * the daemon's config and token files). Strings are borrowed for the daemon's lifetime. */
struct mount_policy {
	const char *allow[MOUNT_ALLOW_MAX];
	size_t nallow;
	const char *deny[12];
	size_t ndeny;
};

/* Resolves each host path (realpath: every symlink followed, then required inside an allowed
 * directory and outside every denied one, /proc, /sys and /dev), requires a directory, and
 * fills uid/gid (default its owner; an rw mount that would write as root is refused).
 * EMBER_E_INVALID naming the field when any fails, mounts unchanged in meaning; no mounts
 * allowed at all (nallow == 0) is EMBER_E_INVALID too, saying which flag allows them. */
int mount_policy_apply(const struct mount_policy *policy, struct sandbox_mounts *mounts,
		       struct ember_error **err);

/* The last check, right before the VMM gets the directory: opens the resolved host path as an
 * O_PATH directory with no symlink and no ".." on the way (openat2 RESOLVE_NO_SYMLINKS), so
 * a component swapped for a link since mount_policy_apply fails here, as does another
 * directory put in its place (device and inode differ) (EMBER_E_INVALID naming the field). Returns the fd (the caller closes it). */
int sandbox_mount_open(const struct sandbox_mount *mount, size_t index, struct ember_error **err);

/* The sandbox object's `mounts` member: [{"host", "guest", "mode", "uid", "gid"}]. */
json_t *sandbox_mounts_json(const struct sandbox_mounts *mounts);

#endif
