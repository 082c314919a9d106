/* recover.c - at startup, take over the sandboxes an earlier daemon left in the run directory
 * (re-attach live ones, remove dead ones, kill VMMs without a record). See docs/operations.md.
 * Runs before the API serves and before the pool starts, so nothing else touches the table. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/manager_internal.h"
#include "sandbox/record.h"
#include "util/fdio.h"
#include "util/log.h"
#include "util/timeutil.h"

/* Takes over one sandbox directory left by an earlier daemon, or explains why not. */
static int recover_one(struct manager *m, const char *id, const char *dir, struct sandbox **out,
		       struct ember_error **err)
{
	struct sandbox_record rec;
	struct sandbox *sb;
	struct proto_ready ready;
	int64_t now_wall = time_wall_ns(), now_mono = time_mono_ms();
	int fd;

	if (sandbox_record_load(dir, &rec, err) < 0)
		return ember_error_wrap(err, "no usable record");
	if (strcmp(rec.id, id) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0, "record names another sandbox");
	if (strcmp(rec.vmm, vmm_driver_name(m->driver)) != 0)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "started by the %s driver, this daemon runs %s", rec.vmm,
				       vmm_driver_name(m->driver));
	if (rec.expires_wall_ns <= now_wall)
		return ember_error_set(err, EMBER_E_INVALID, 0, "its lifetime ended");
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	sb->pack = catalog_find(m->catalog, rec.language_pack);
	if (sb->pack == NULL) {
		free(sb);
		return ember_error_set(err, EMBER_E_INVALID, 0, "pack `%s` is no longer installed",
				       rec.language_pack);
	}
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	snprintf(sb->run_dir, sizeof(sb->run_dir), "%s", dir);
	sb->vcpus = rec.vcpus;
	sb->memory_mib = rec.memory_mib;
	sb->timeout_s = rec.timeout_s;
	sb->overlay_mib = rec.overlay_mib;
	sb->boot_ms = rec.boot_ms;
	sb->created_wall_ns = rec.created_wall_ns;
	sb->created_mono_ms = now_mono - (now_wall - rec.created_wall_ns) / 1000000;
	sb->expires_mono_ms = now_mono + (rec.expires_wall_ns - now_wall) / 1000000;
	if (vmm_attach(m->driver, id, dir, rec.pid, rec.pid_start_ticks, &sb->vm, err) < 0)
		goto fail;
	/* A fresh HELLO starts a new session: the guest ends whatever the old one left running. */
	fd = vmm_connect_agent(sb->vm, time_mono_ms() + 10000, err);
	if (fd < 0 || channel_open(fd, id, vmm_exit_fd(sb->vm), time_mono_ms() + 10000, &sb->ch,
				   &ready, err) < 0)
		goto fail;
	sb->state = SANDBOX_READY;
	*out = sb;
	return 0;
fail:
	manager_stop_vm(sb);
	free(sb);
	return -1;
}

struct pid_list {
	pid_t pids[1024];
	size_t count;
};
void manager_recover(struct manager *m, struct manager_recovery *out)
{
	struct pid_list keep = { .count = 0 };
	DIR *dir = opendir(m->run_dir);
	struct dirent *de;

	memset(out, 0, sizeof(*out));
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		char path[PATH_MAX];
		struct sandbox *sb = NULL;
		struct ember_error *err = NULL;

		if (de->d_name[0] == '.' || strcmp(de->d_name, "templates") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", m->run_dir, de->d_name);
		if (strncmp(de->d_name, SANDBOX_ID_PREFIX, strlen(SANDBOX_ID_PREFIX)) != 0 ||
		    strlen(de->d_name) != SANDBOX_ID_LEN) {
			log_event(LOG_WARN, NULL, "recover.unknown_entry", -1,
				  "leaving `%s` alone: not a sandbox directory", path);
			continue;
		}
		if (recover_one(m, de->d_name, path, &sb, &err) < 0) {
			log_event(LOG_INFO, de->d_name, "recover.cleaned", -1, "%s; removed",
				  err != NULL ? err->message : "not recoverable");
			ember_error_free(&err);
			/* Whatever still runs for it is killed with the strays below, or here when
			 * its command line does not name the directory (a jailed VMM). */
			dir_remove_tree(path, NULL);
			out->strays += vmm_driver_cleanup_stray(m->driver, de->d_name);
			out->cleaned++;
			continue;
		}
		pthread_mutex_lock(&m->lock);
		sb->next = m->list;
		m->list = sb;
		m->count++;
		pthread_mutex_unlock(&m->lock);
		if (keep.count < sizeof(keep.pids) / sizeof(keep.pids[0]))
			keep.pids[keep.count++] = vmm_pid(sb->vm);
		out->reattached++;
		log_event(LOG_INFO, sb->id, "recover.reattached", -1, "vmm_pid=%d pack=%s",
			  (int)vmm_pid(sb->vm), sb->pack->name);
	}
	if (dir != NULL)
		closedir(dir);
	out->strays += vmm_kill_strays(m->run_dir, keep.pids, keep.count);
	if (out->strays > 0)
		log_event(LOG_WARN, NULL, "recover.strays", -1,
			  "killed %u VMM processes that had no sandbox record", out->strays);
}
