/* recover.c - restart recovery (interface: recover.h): re-attach, clean up, kill strays.
 * Runs before the API serves and before the pool starts; a re-attached sandbox is the manager's
 * once adopt() has it, and nothing here touches it after that. */
#include "sandbox/recover.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/record.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/log.h"
#include "util/timeutil.h"

/* Whether a record describes a sandbox this daemon can take over (id, driver, lifetime, pack). */
static int check_record(const struct recover_env *env, const struct sandbox_record *rec,
			const char *id, struct ember_error **err)
{
	if (strcmp(rec->id, id) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "record names another sandbox");
	if (strcmp(rec->vmm, vmm_driver_name(env->driver)) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "started by the %s driver, this daemon runs %s", rec->vmm,
				       vmm_driver_name(env->driver));
	if (rec->expires_wall_ns <= time_wall_ns())
		return ember_error_set(err, EMBER_E_INVALID, 0, "its lifetime ended");
	if (catalog_find(env->catalog, rec->language_pack) == NULL)
		return ember_error_set(err, EMBER_E_INVALID, 0, "pack `%s` is no longer installed",
				       rec->language_pack);
	return 0;
}

/* The sandbox a checked record describes, its times moved onto this boot's monotonic clock. */
static void sandbox_from_record(const struct recover_env *env, const struct sandbox_record *rec,
				const char *dir, struct sandbox *sb)
{
	int64_t now_wall = time_wall_ns(), now_mono = time_mono_ms();

	sb->pack = catalog_find(env->catalog, rec->language_pack);
	snprintf(sb->id, sizeof(sb->id), "%s", rec->id);
	snprintf(sb->run_dir, sizeof(sb->run_dir), "%s", dir);
	sb->vcpus = rec->vcpus;
	sb->memory_mib = rec->memory_mib;
	sb->timeout_s = rec->timeout_s;
	sb->overlay_mib = rec->overlay_mib;
	sb->idle_timeout_s = rec->idle_timeout_s;
	sb->cpu_weight = rec->cpu_weight != 0 ? rec->cpu_weight : VMM_CPU_WEIGHT_DEFAULT;
	sb->labels = rec->labels;
	sb->env = rec->env;
	sb->mounts = rec->mounts;
	sb->boot_ms = rec->boot_ms;
	sb->created_wall_ns = rec->created_wall_ns;
	sb->created_mono_ms = now_mono - (now_wall - rec->created_wall_ns) / 1000000;
	sb->expires_mono_ms = now_mono + (rec->expires_wall_ns - now_wall) / 1000000;
	/* The record does not follow every request (that would be a write per exec): taking the
	 * sandbox over counts as activity, so a restart never ends an idle clock early. */
	sb->last_activity_mono_ms = now_mono;
}

/* The sandbox's network, when it had one: its table and resolver rebuilt (net/egress.h). */
static int adopt_network(const struct recover_env *env, struct sandbox *sb,
			 struct ember_error **err)
{
	struct ember_error *adopt_err = NULL;

	if (env->egress == NULL)
		return 0;
	if (egress_adopt(env->egress, sb->id, sb->run_dir, &sb->link, &adopt_err) == 0)
		return 0;
	if (adopt_err->kind == EMBER_E_NOT_FOUND) {
		ember_error_free(&adopt_err);
		return 0;
	}
	return ember_error_propagate(err, adopt_err);
}

/* A paused sandbox: its saved VM (both files of a driver that keeps RAM apart) must be there
 * and restorable by this daemon (its pack and
 * base unchanged); it stays paused, without VMM or channel, until a resume. */
static int recover_paused(const struct recover_env *env, const struct sandbox_record *rec,
			  struct sandbox *sb, struct ember_error **err)
{
	const struct pack *pack = catalog_find(env->catalog, rec->language_pack);
	uint64_t bytes;

	if (env->paused_dir == NULL)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "paused, and this daemon has no --state-dir");
	if (pack == NULL || strcmp(pack->sha256, rec->pack_digest) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "paused with pack `%s` %.12s, which is no longer installed",
				       rec->language_pack, rec->pack_digest);
	if (env->base_digest == NULL || strcmp(env->base_digest, rec->base_digest) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "paused under another kernel, initramfs or VMM");
	if (snprintf(sb->paused_state, sizeof(sb->paused_state), "%s/%s.vmstate",
		     env->paused_dir, rec->id) >= (int)sizeof(sb->paused_state))
		return ember_error_set(err, EMBER_E_INVALID, ENAMETOOLONG, "paused dir too long");
	if (vmm_saved_state_size(env->driver, sb->paused_state, &bytes) < 0) {
		sb->paused_state[0] = '\0';
		return ember_error_set(err, EMBER_E_INVALID, 0, "paused, but its saved VM is gone");
	}
	sb->lifetime_left_ms = rec->lifetime_left_ms;
	sb->paused_mono_ms = time_mono_ms();
	sb->state = SANDBOX_PAUSED;
	return 0;
}

/* Takes over one sandbox directory left by an earlier daemon, or explains why not. */
static int recover_one(const struct recover_env *env, const char *id, const char *dir,
		       struct sandbox **out, struct ember_error **err)
{
	_cleanup_free_ struct sandbox *sb = NULL;
	struct sandbox_record rec;
	struct proto_hello_net net;
	struct proto_ready ready;
	int fd;

	if (sandbox_record_load(dir, &rec, err) < 0)
		return ember_error_wrap(err, "no usable record");
	if (check_record(env, &rec, id, err) < 0)
		return -1;
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	sandbox_from_record(env, &rec, dir, sb);
	if (rec.paused) {
		if (recover_paused(env, &rec, sb, err) < 0)
			return -1;
		*out = steal_pointer(&sb);
		return 0;
	}
	if (vmm_attach(env->driver, id, dir, rec.pid, rec.pid_start_ticks, &sb->vm, err) < 0)
		return -1;
	/* Its threads kept their nice; the instance must know it for its stop. */
	if (sb->cpu_weight != VMM_CPU_WEIGHT_DEFAULT)
		vmm_set_cpu_weight(sb->vm, sb->cpu_weight);
	if (adopt_network(env, sb, err) < 0) {
		sandbox_release_vm(sb->vm, NULL);
		return -1;
	}
	if (sb->link != NULL)
		egress_link_hello(sb->link, &net);
	/* A fresh HELLO starts a new session: the guest ends whatever the old one left running. */
	fd = vmm_connect_agent(sb->vm, time_mono_ms() + 10000, err);
	if (fd < 0 || channel_open(fd, id, sb->link != NULL ? &net : NULL, NULL, vmm_exit_fd(sb->vm),
				   time_mono_ms() + 10000, &sb->ch, &ready, err) < 0) {
		sandbox_release_vm(sb->vm, sb->ch);
		egress_detach(env->egress, sb->link);
		return -1;
	}
	sb->state = SANDBOX_READY;
	*out = steal_pointer(&sb);
	return 0;
}

struct pid_list {
	pid_t pids[1024];
	size_t count;
};

/* Re-attaches the sandbox in one directory entry (its VMM's pid goes to keep) or removes it. */
static void recover_entry(const struct recover_env *env, const char *name,
			  struct pid_list *keep, struct manager_recovery *out)
{
	char path[PATH_MAX];
	struct sandbox *sb = NULL;
	struct ember_error *err = NULL;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", env->run_dir, name);
	/* A fork's base VM in passing (the earlier daemon died while it made one). */
	if (strncmp(name, FORK_BASE_PREFIX, strlen(FORK_BASE_PREFIX)) == 0) {
		log_event(LOG_INFO, NULL, "recover.cleaned", -1, "removed the fork base `%s`", path);
		dir_remove_tree(path, NULL);
		out->strays += vmm_driver_cleanup_stray(env->driver, name);
		return;
	}
	if (strncmp(name, SANDBOX_ID_PREFIX, strlen(SANDBOX_ID_PREFIX)) != 0 ||
	    strlen(name) != SANDBOX_ID_LEN) {
		log_event(LOG_WARN, NULL, "recover.unknown_entry", -1,
			  "leaving `%s` alone: not a sandbox directory", path);
		return;
	}
	if (recover_one(env, name, path, &sb, &err) < 0) {
		log_event(LOG_INFO, name, "recover.cleaned", -1, "%s; removed", err->message);
		ember_error_free(&err);
		/* Whatever still runs for it is killed with the strays afterwards, or here when its
		 * command line does not name the directory (a jailed VMM). */
		dir_remove_tree(path, NULL);
		out->strays += vmm_driver_cleanup_stray(env->driver, name);
		out->cleaned++;
		return;
	}
	if (sb->state == SANDBOX_PAUSED) {
		log_event(LOG_INFO, sb->id, "recover.reattached", -1, "paused, pack=%s",
			  sb->pack->name);
		env->adopt(env->ctx, sb);
		out->reattached++;
		return;
	}
	pid = vmm_pid(sb->vm);
	log_event(LOG_INFO, sb->id, "recover.reattached", -1, "vmm_pid=%d pack=%s", (int)pid,
		  sb->pack->name);
	env->adopt(env->ctx, sb);
	if (keep->count < sizeof(keep->pids) / sizeof(keep->pids[0]))
		keep->pids[keep->count++] = pid;
	out->reattached++;
}

void recover_run_dir(const struct recover_env *env, struct manager_recovery *out)
{
	struct pid_list keep = { .count = 0 };
	DIR *dir = opendir(env->run_dir);
	struct dirent *de;

	memset(out, 0, sizeof(*out));
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "templates") == 0)
			continue;
		recover_entry(env, de->d_name, &keep, out);
	}
	if (dir != NULL)
		closedir(dir);
	out->strays += vmm_kill_strays(env->run_dir, keep.pids, keep.count);
	if (out->strays > 0)
		log_event(LOG_WARN, NULL, "recover.strays", -1,
			  "killed %u VMM processes that had no sandbox record", out->strays);
}
