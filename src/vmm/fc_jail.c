/* fc_jail.c - the Firecracker jailer's layout, links and cleanup (docs/firecracker.md). */
#include "vmm/fc_jail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fdio.h"

#define JAIL_DEFAULT_ID 65534u /* nobody/nogroup: set a dedicated uid and gid in production */
#define JAIL_DEFAULT_BASE "/srv/jailer" /* the jailer's own default */

static int env_id(const char *name, unsigned *out, struct ember_error **err)
{
	const char *value = getenv(name);
	unsigned long long v;
	char *end;

	if (value == NULL || value[0] == '\0') {
		*out = JAIL_DEFAULT_ID;
		return 0;
	}
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno != 0 || *end != '\0' || value[0] < '0' || value[0] > '9' || v >= 0xffffffffull)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "%s must be a numeric id (got `%s`)", name, value);
	*out = (unsigned)v;
	return 0;
}

/* The jailer finds cgroup v2 the same way: the first cgroup2 entry in the mount table. */
static void find_cgroup2(char *out, size_t size)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL;

	out[0] = '\0';
	if (file_read_all("/proc/self/mounts", 1 << 20, &text, NULL, NULL) < 0)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char dev[256], dir[PATH_MAX], type[64];

		if (sscanf(line, "%255s %4095s %63s", dev, dir, type) == 3 &&
		    strcmp(type, "cgroup2") == 0 && strchr(dir, '\\') == NULL) {
			snprintf(out, size, "%s", dir);
			return;
		}
	}
}

int fc_jail_settings_load(struct fc_jail_settings *s, struct ember_error **err)
{
	const char *base = getenv("EMBERD_JAILER_CHROOT_BASE");
	unsigned uid, gid;

	if (env_id("EMBERD_JAILER_UID", &uid, err) < 0 ||
	    env_id("EMBERD_JAILER_GID", &gid, err) < 0)
		return -1;
	if (base == NULL || base[0] == '\0')
		base = JAIL_DEFAULT_BASE;
	if (base[0] != '/')
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "EMBERD_JAILER_CHROOT_BASE must be an absolute path (got `%s`)",
				       base);
	if (snprintf(s->chroot_base, sizeof(s->chroot_base), "%s", base) >=
	    (int)sizeof(s->chroot_base))
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG,
				       "EMBERD_JAILER_CHROOT_BASE is too long");
	s->uid = (uid_t)uid;
	s->gid = (gid_t)gid;
	find_cgroup2(s->cgroup2_root, sizeof(s->cgroup2_root));
	return 0;
}

int fc_instance_id(const char *sandbox_id, char *out, size_t size, struct ember_error **err)
{
	size_t i, len = strlen(sandbox_id);

	if (len == 0 || len > FC_ID_MAX || len >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, 0,
				       "sandbox id `%s` does not fit a Firecracker id", sandbox_id);
	for (i = 0; i < len; i++) {
		char c = sandbox_id[i] == '_' ? '-' : sandbox_id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return ember_error_set(err, EMBER_E_INTERNAL, 0,
					       "sandbox id `%s` does not fit a Firecracker id",
					       sandbox_id);
		out[i] = c;
	}
	out[len] = '\0';
	return 0;
}

/* mkdir -p, for the directories above the jail root (shared by every VM: never removed). */
static int make_dirs(const char *path, mode_t mode, struct ember_error **err)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "path too long");
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return ember_error_sys(err, "create `%s`", buf);
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return ember_error_sys(err, "create `%s`", buf);
	return 0;
}

int fc_jail_layout(struct fc_jail *j, const struct fc_jail_settings *s, const char *exec_file,
		   const char *sandbox_id, struct ember_error **err)
{
	const char *exec_name = strrchr(exec_file, '/');

	memset(j, 0, sizeof(*j));
	exec_name = exec_name != NULL ? exec_name + 1 : exec_file;
	if (fc_instance_id(sandbox_id, j->id, sizeof(j->id), err) < 0)
		return -1;
	if (snprintf(j->instance_dir, sizeof(j->instance_dir), "%s/%s/%s", s->chroot_base,
		     exec_name, j->id) >= (int)sizeof(j->instance_dir) ||
	    snprintf(j->root, sizeof(j->root), "%s/root", j->instance_dir) >=
		    (int)sizeof(j->root) ||
	    (s->cgroup2_root[0] != '\0' &&
	     snprintf(j->cgroup_dir, sizeof(j->cgroup_dir), "%s/%s/%s", s->cgroup2_root,
		      exec_name, j->id) >= (int)sizeof(j->cgroup_dir))) {
		j->instance_dir[0] = '\0';
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail path too long");
	}
	return 0;
}

int fc_jail_prepare(struct fc_jail *j, const struct fc_jail_settings *s, const char *exec_file,
		    const char *sandbox_id, struct ember_error **err)
{
	if (fc_jail_layout(j, s, exec_file, sandbox_id, err) < 0)
		return -1;
	if (make_dirs(j->root, 0700, err) < 0)
		return ember_error_wrap(err, "jail for %s", sandbox_id);
	return 0;
}

int fc_jail_host_path(const struct fc_jail *j, const char *name, char *out, size_t size,
		      struct ember_error **err)
{
	int n = snprintf(out, size, "%s/%s", j->root, name);

	if (n < 0 || (size_t)n >= size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG,
				       "`%s/%s` exceeds %zu bytes: use a shorter "
				       "EMBERD_JAILER_CHROOT_BASE", j->root, name, size - 1);
	return 0;
}

int fc_jail_link(const struct fc_jail *j, const char *host_path, const char *name,
		 char *jail_path, size_t size, struct ember_error **err)
{
	char target[PATH_MAX];

	if (fc_jail_host_path(j, name, target, sizeof(target), err) < 0)
		return -1;
	if (snprintf(jail_path, size, "/%s", name) >= (int)size)
		return ember_error_set(err, EMBER_E_INTERNAL, ENAMETOOLONG, "jail path too long");
	unlink(target); /* left over from an earlier attempt with the same id */
	if (link(host_path, target) < 0) {
		if (errno == EXDEV)
			return ember_error_set(err, EMBER_E_INTERNAL, EXDEV,
					       "hard-link `%s` into the jail `%s`: different "
					       "filesystems; put the images directory and "
					       "EMBERD_JAILER_CHROOT_BASE on one filesystem",
					       host_path, j->root);
		return ember_error_sys(err, "hard-link `%s` to `%s`", host_path, target);
	}
	return 0;
}

int fc_jail_take(const struct fc_jail *j, const char *name, const char *host_path,
		 struct ember_error **err)
{
	char source[PATH_MAX];

	if (fc_jail_host_path(j, name, source, sizeof(source), err) < 0)
		return -1;
	if (rename(source, host_path) < 0) {
		if (errno == EXDEV)
			return ember_error_set(err, EMBER_E_INTERNAL, EXDEV,
					       "move `%s` out of the jail to `%s`: different "
					       "filesystems; put the run directory and "
					       "EMBERD_JAILER_CHROOT_BASE on one filesystem",
					       source, host_path);
		return ember_error_sys(err, "move `%s` out of the jail to `%s`", source, host_path);
	}
	/* The jailed uid created it; every jail shares that uid by default. */
	if (chown(host_path, geteuid(), getegid()) < 0 || chmod(host_path, 0644) < 0)
		return ember_error_sys(err, "take ownership of `%s`", host_path);
	return 0;
}

void fc_jail_cleanup(const struct fc_jail *j)
{
	if (j->instance_dir[0] != '\0')
		dir_remove_tree(j->instance_dir, NULL);
	/* The kernel refuses while a process is still in the cgroup: the VMM must be gone. */
	if (j->cgroup_dir[0] != '\0')
		rmdir(j->cgroup_dir);
}
