/* record.h - the on-disk record of a live sandbox (<run-dir>/<id>/sandbox.json), which lets a
 * restarted daemon re-attach to VMs that outlived it. Written by the manager (or the warm
 * pool's thread on its behalf) with an atomic rename once a sandbox is ready; read back at
 * startup by recover.c. The parser is strict and bounded (fuzzed): a record that does not parse
 * is a dead sandbox, never a guess. The file belongs to its sandbox directory and goes with it;
 * callers own the struct sandbox_record they pass. */
#ifndef EMBER_SANDBOX_RECORD_H
#define EMBER_SANDBOX_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/catalog.h"
#include "sandbox/labels.h"
#include "sandbox/mounts.h"
#include "sandbox/sandboxenv.h"
#include "util/error.h"

#define SANDBOX_RECORD_FILE "sandbox.json"
/* 32 labels of 63 + 256 bytes fit even when every value byte is an escaped quote (2 bytes), and
 * so do the environment (sandboxenv.h) and 8 mounts of 1023 + 255 bytes. */
#define SANDBOX_RECORD_MAX (128 * 1024)
#define SANDBOX_RECORD_VERSION 1

struct sandbox_record {
	char id[64];
	char language_pack[CATALOG_NAME_MAX + 1];
	char vmm[16];                 /* driver name: a record is only re-attached by the same */
	unsigned vcpus;
	unsigned memory_mib;
	unsigned timeout_s;
	unsigned overlay_mib;
	unsigned idle_timeout_s;      /* 0: none (absent in records of earlier daemons) */
	unsigned cpu_weight;          /* 0: the default (absent in records of earlier daemons) */
	int64_t created_wall_ns;
	int64_t expires_wall_ns;
	int64_t boot_ms;
	pid_t pid;                    /* 0 when paused */
	uint64_t pid_start_ticks;     /* /proc/<pid>/stat starttime: guards against PID reuse */
	/* A paused sandbox (no VMM; its saved VM is a file in the daemon's paused dir): the
	 * lifetime it has left once resumed (expires_wall_ns is then when it is deleted), and what
	 * its saved VM needs to be restored: its pack's digest and the daemon's base fingerprint
	 * (kernel, initramfs, VMM). */
	bool paused;
	int64_t lifetime_left_ms;
	char pack_digest[65];
	char base_digest[65];
	struct sandbox_labels labels; /* none in records of earlier daemons */
	struct sandbox_env env;       /* none in records of earlier daemons */
	struct sandbox_mounts mounts; /* none in records of earlier daemons */
};

/* JSON text of rec (malloc'd). */
char *sandbox_record_encode(const struct sandbox_record *rec, size_t *len,
			    struct ember_error **err);
int sandbox_record_parse(const char *text, size_t len, struct sandbox_record *rec,
			 struct ember_error **err);
/* Atomic write (temp file, then rename; not fsynced: see record.c). */
int sandbox_record_save(const char *dir, const struct sandbox_record *rec,
			struct ember_error **err);
int sandbox_record_load(const char *dir, struct sandbox_record *rec, struct ember_error **err);

#endif
