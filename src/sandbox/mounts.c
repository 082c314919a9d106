/* mounts.c - a sandbox's host directories: request syntax, operator policy, last check
 * (interface: mounts.h). */
#include "sandbox/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/jsonutil.h"
#include "vmm/vmm.h"

#define KIND EMBER_E_INVALID
/* uid/gid a request may name: 0 (root) never for what the guest writes; (uid_t)-1 is "none"
 * to the kernel and 2^31.. are user namespaces' business. */
#define MOUNT_ID_MAX 0x7ffffffeu

/* ---- the request's syntax ---- */

static int get_path(json_t *obj, const char *key, size_t index, size_t max, char *out,
		    struct ember_error **err)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	size_t len;

	if (v == NULL)
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].%s` is required", index, key);
	if (!json_is_string(v))
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].%s` must be a string", index,
				       key);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0 || len > max || strlen(s) != len)
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].%s` must be 1 to %zu bytes "
				       "without NUL", index, key, max);
	if (s[0] != '/')
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].%s` must be an absolute path",
				       index, key);
	memcpy(out, s, len + 1);
	return 0;
}

/* A request's uid/gid: optional, 1..MOUNT_ID_MAX; a record's (resolved): required, 0 too. */
static int get_id(json_t *obj, const char *key, size_t index, bool resolved, bool *has,
		  unsigned *out, struct ember_error **err)
{
	json_t *v = json_object_get(obj, key);
	json_int_t min = resolved ? 0 : 1;

	*has = false;
	if (v == NULL && !resolved)
		return 0;
	if (v == NULL || !json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > (json_int_t)MOUNT_ID_MAX)
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].%s` must be an integer "
				       "between %d and %u", index, key, (int)min, MOUNT_ID_MAX);
	*has = true;
	*out = (unsigned)json_integer_value(v);
	return 0;
}

static int parse_one(json_t *obj, size_t index, bool resolved, struct sandbox_mount *m,
		     struct ember_error **err)
{
	static const char *const keys[] = { "host", "guest", "mode", "uid", "gid", NULL };
	const char *why;
	json_t *mode;
	unsigned id = 0;

	if (!json_is_object(obj))
		return ember_error_set(err, KIND, 0, "field `mounts[%zu]` must be an object", index);
	if (json_check_keys(obj, keys, KIND, err) < 0)
		return ember_error_wrap(err, "field `mounts[%zu]`", index);
	if (get_path(obj, "host", index, SANDBOX_MOUNT_HOST_MAX, m->host, err) < 0 ||
	    get_path(obj, "guest", index, PROTO_MOUNT_PATH_MAX, m->guest, err) < 0)
		return -1;
	if (!proto_mount_path_valid(m->guest, &why))
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].guest` %s", index, why);
	mode = json_object_get(obj, "mode");
	if (mode != NULL && !(json_is_string(mode) && (strcmp(json_string_value(mode), "ro") == 0 ||
						       strcmp(json_string_value(mode), "rw") == 0)))
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].mode` must be \"ro\" or "
				       "\"rw\"", index);
	m->rw = mode != NULL && strcmp(json_string_value(mode), "rw") == 0;
	if (get_id(obj, "uid", index, resolved, &m->has_uid, &id, err) < 0)
		return -1;
	m->uid = (uid_t)id;
	if (get_id(obj, "gid", index, resolved, &m->has_gid, &id, err) < 0)
		return -1;
	m->gid = (gid_t)id;
	return 0;
}

static int parse_array(json_t *array, bool resolved, struct sandbox_mounts *out,
		       struct ember_error **err)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	if (array == NULL || json_is_null(array))
		return 0;
	if (!json_is_array(array))
		return ember_error_set(err, KIND, 0, "field `mounts` must be an array");
	if (json_array_size(array) > SANDBOX_MOUNTS_MAX)
		return ember_error_set(err, KIND, 0, "field `mounts` may hold at most %d mounts",
				       SANDBOX_MOUNTS_MAX);
	for (i = 0; i < json_array_size(array); i++) {
		if (parse_one(json_array_get(array, i), i, resolved, &out->m[i], err) < 0) {
			memset(out, 0, sizeof(*out));
			return -1;
		}
		out->n = i + 1;
	}
	for (i = 0; i < out->n; i++)
		for (j = 0; j < out->n; j++)
			if (i != j && proto_path_within(out->m[i].guest, out->m[j].guest)) {
				int ret = ember_error_set(err, KIND, 0, "field `mounts[%zu].guest` "
							  "`%s` clashes with mounts[%zu]'s `%s`",
							  i, out->m[i].guest, j,
							  out->m[j].guest);

				memset(out, 0, sizeof(*out));
				return ret;
			}
	return 0;
}

int sandbox_mounts_parse(json_t *array, struct sandbox_mounts *out, struct ember_error **err)
{
	return parse_array(array, false, out, err);
}

int sandbox_mounts_from_json(json_t *array, struct sandbox_mounts *out, struct ember_error **err)
{
	return parse_array(array, true, out, err);
}

/* ---- the operator's policy ---- */

/* The host paths no mount may be, lie under or hold, whatever --allow-mount says: the kernel's
 * and the ones every jailed VMM sees already (vmm/jail.c binds them read-only, and a tree the
 * jail attaches may neither hold nor lie under them). */
static const char *const never_mountable[] = { "/proc", "/sys", "/dev", "/usr", "/bin",
					       "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
					       "/etc/ld.so.cache", VMM_JAIL_ROOT };

static int refuse_host(size_t index, const char *resolved, const char *why,
		       struct ember_error **err)
{
	return ember_error_set(err, KIND, 0, "field `mounts[%zu].host`: `%s` %s", index, resolved,
			       why);
}

/* Whether a denied path and the mount overlap: the mount is it, under it, or holds it. */
static bool overlaps(const char *denied, const char *path)
{
	return proto_path_within(path, denied) || proto_path_within(denied, path);
}

static int apply_one(const struct mount_policy *policy, struct sandbox_mount *m, size_t index,
		     struct ember_error **err)
{
	_cleanup_free_ char *resolved = realpath(m->host, NULL);
	struct stat st;
	size_t i;

	if (resolved == NULL)
		return ember_error_set(err, KIND, errno, "field `mounts[%zu].host`: `%s`: %s", index,
				       m->host, strerror(errno));
	if (strlen(resolved) > SANDBOX_MOUNT_HOST_MAX)
		return refuse_host(index, m->host, "resolves to a path too long", err);
	for (i = 0; i < sizeof(never_mountable) / sizeof(never_mountable[0]); i++)
		if (overlaps(never_mountable[i], resolved))
			return refuse_host(index, resolved, "is never mountable (a system directory, "
					   "or holds one)", err);
	for (i = 0; i < policy->ndeny; i++)
		if (overlaps(policy->deny[i], resolved))
			return refuse_host(index, resolved, "is never mountable (the daemon's own "
					   "files)", err);
	for (i = 0; i < policy->nallow; i++)
		if (proto_path_within(resolved, policy->allow[i]))
			break;
	if (i == policy->nallow)
		return refuse_host(index, resolved, "is not inside a directory --allow-mount allows",
				   err);
	if (stat(resolved, &st) < 0)
		return ember_error_set(err, KIND, errno, "field `mounts[%zu].host`: `%s`: %s", index,
				       resolved, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return refuse_host(index, resolved, "is not a directory", err);
	if (!m->has_uid)
		m->uid = st.st_uid;
	if (!m->has_gid)
		m->gid = st.st_gid;
	if (m->uid > MOUNT_ID_MAX || m->gid > MOUNT_ID_MAX)
		return ember_error_set(err, KIND, 0, "field `mounts[%zu]`: `%s` belongs to uid %u "
				       "gid %u, beyond %u: give `uid` and `gid`", index, resolved,
				       (unsigned)m->uid, (unsigned)m->gid, MOUNT_ID_MAX);
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	if (m->rw && (m->uid == 0 || m->gid == 0))
		return ember_error_set(err, KIND, 0, "field `mounts[%zu]`: an rw mount never writes "
				       "as root, and `%s` belongs to root (its uid or gid is 0): give "
				       "`uid` and `gid` (the owner of the files the sandbox writes "
				       "there)", index, resolved);
	snprintf(m->host, sizeof(m->host), "%s", resolved);
	return 0;
}

int mount_policy_apply(const struct mount_policy *policy, struct sandbox_mounts *mounts,
		       struct ember_error **err)
{
	size_t i, j;

	if (mounts->n == 0)
		return 0;
	if (policy == NULL || policy->nallow == 0)
		return ember_error_set(err, KIND, 0, "field `mounts`: this daemon allows no mounts "
				       "(start it with --allow-mount DIR)");
	for (i = 0; i < mounts->n; i++)
		if (apply_one(policy, &mounts->m[i], i, err) < 0)
			return -1;
	/* Each is its own tree in the VMM's jail: one may not hold another. */
	for (i = 0; i < mounts->n; i++)
		for (j = 0; j < i; j++)
			if (overlaps(mounts->m[j].host, mounts->m[i].host))
				return ember_error_set(err, KIND, 0, "field `mounts[%zu].host`: `%s` "
						       "is, holds or lies under mounts[%zu]'s `%s`",
						       i, mounts->m[i].host, j,
						       mounts->m[j].host);
	return 0;
}

int sandbox_mount_open(const struct sandbox_mount *mount, size_t index, struct ember_error **err)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, AT_FDCWD, mount->host, &how, sizeof(how));
	struct stat st;

	if (fd < 0)
		return ember_error_set(err, KIND, errno, "field `mounts[%zu].host`: `%s` changed "
				       "since it was checked (%s)", index, mount->host,
				       errno == ELOOP ? "a component is a symlink now"
						      : strerror(errno));
	if (fstat((int)fd, &st) < 0 || st.st_dev != mount->dev || st.st_ino != mount->ino) {
		close((int)fd);
		return ember_error_set(err, KIND, 0, "field `mounts[%zu].host`: `%s` changed since "
				       "it was checked (another directory is in its place)", index,
				       mount->host);
	}
	return (int)fd;
}

/* ---- the sandbox object ---- */

json_t *sandbox_mounts_json(const struct sandbox_mounts *mounts)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < mounts->n; i++) {
		const struct sandbox_mount *m = &mounts->m[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:I}", "host", m->host,
						     "guest", m->guest, "mode", m->rw ? "rw" : "ro",
						     "uid", (json_int_t)m->uid, "gid",
						     (json_int_t)m->gid));
	}
	return arr;
}
