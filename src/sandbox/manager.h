/* manager.h - the sandbox manager: the table of sandboxes, their states and limits, and the
 * lifecycle (boot, exec, destroy, expiry). Called by the API layer and the daemon's main.
 * Talks to VMMs only through vmm.h and to guests only through channel.h, and never holds its
 * table lock across I/O to a guest or a VMM.
 * Ownership: the manager owns every sandbox (its VM, channel, directory and record), its warm
 * pool and its template store; callers get copies (struct sandbox_info), never pointers into
 * the table. It borrows the startup catalog and the driver, which outlive it, and owns the
 * generations later reloads load (sandbox/catalogs.h): a sandbox keeps the pack of the generation
 * it was created in until it is gone, whatever reloads do meanwhile. */
#ifndef EMBER_SANDBOX_MANAGER_H
#define EMBER_SANDBOX_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "channel/channel.h"
#include "net/egress.h"
#include "sandbox/catalog.h"
#include "sandbox/catalogdiff.h"
#include "sandbox/contexts.h"
#include "sandbox/labels.h"
#include "sandbox/mounts.h"
#include "sandbox/procs.h"
#include "sandbox/sandboxenv.h"
#include "util/error.h"
#include "vmm/vmm.h"

#define SANDBOX_ID_PREFIX "sb_"
#define SANDBOX_ID_LEN (3 + 32)
/* A fork's passing files and the run directory of its base VM (never a sandbox's). */
#define FORK_BASE_PREFIX "fork_"

enum sandbox_state {
	SANDBOX_BOOTING,
	SANDBOX_READY,
	SANDBOX_DESTROYING,
	SANDBOX_FAILED,   /* the guest or VMM died or broke the protocol; only DELETE helps */
	SANDBOX_GONE,     /* only seen in snapshots taken while a sandbox is being removed */
	SANDBOX_PAUSING,  /* POST .../pause in progress */
	SANDBOX_PAUSED,   /* no VMM: its whole state is a file in the state dir */
	SANDBOX_RESUMING, /* POST .../resume in progress */
};

const char *sandbox_state_name(enum sandbox_state state);

/* Daemon limits (see docs/operations.md for defaults and why). */
struct manager_config {
	const char *run_dir;              /* per-sandbox directories are made below it */
	const char *state_dir;            /* paused sandboxes' saved VMs (on disk); NULL: none
					   * (a pause is a 409) */
	unsigned max_paused_s;            /* a paused sandbox is deleted after this */
	unsigned max_fork;                /* sandboxes one fork may make */
	unsigned max_snapshots;           /* snapshots kept at once */
	struct egress *egress;            /* networked sandboxes (net/egress.h), the daemon's;
					   * NULL: every create is mode none */
	const struct mount_policy *mounts; /* --allow-mount and the daemon's own paths; NULL or
					   * no allowed directory: a create with mounts is a 400 */
	unsigned max_mount_image_mib;     /* a read-only mount's squashfs image (block drivers) */
	unsigned max_sandboxes;           /* beyond: 429; 0: derived from host memory */
	const char *meminfo_path;         /* host memory (headroom.h); NULL: /proc/meminfo */
	unsigned memory_reserve_mib;      /* kept free for the host; 0: a tenth, >= 256 MiB */
	unsigned max_concurrent_boots;    /* beyond: create waits up to boot_timeout_ms, then 503 */
	unsigned max_vcpus;
	unsigned max_memory_mib;
	unsigned default_timeout_s;       /* sandbox lifetime when the request has none */
	unsigned max_timeout_s;
	unsigned boot_timeout_ms;
	unsigned max_exec_timeout_ms;
	uint64_t max_output_bytes;        /* per stream per exec */
	unsigned max_processes;           /* RLIMIT_NPROC of the guest's sandbox user */
	unsigned max_contexts;            /* code contexts per sandbox (<= SANDBOX_CONTEXTS_MAX) */
	unsigned max_overlay_mib;         /* writable layer (guest tmpfs) a create may ask for */
	bool snapshots;                   /* restore clones from templates when the driver can */
	unsigned pool_size;               /* ready clones kept per pack (default shape); 0: none */
	const char *pool_packs;           /* the packs pooled (comma-separated, checked with
					   * pack_list_check); NULL: every pack */
	unsigned max_templates;           /* templates at once (LRU eviction); 0: no cap */
	bool prewarm;                     /* build every pack's template at startup */
};

struct sandbox_create_request {
	const char *language_pack;        /* NULL: "python" */
	unsigned vcpus;                   /* 0: pack default */
	unsigned memory_mib;              /* 0: pack default */
	unsigned timeout_s;               /* 0: config default */
	unsigned overlay_mib;             /* 0: pack default */
	unsigned idle_timeout_s;          /* 0: none */
	unsigned cpu_weight;              /* 0: VMM_CPU_WEIGHT_DEFAULT (1-10000) */
	const struct sandbox_labels *labels; /* NULL: none; checked (labels.h) */
	const struct sandbox_env *env;    /* NULL: none; checked (sandboxenv.h); every program
					   * starts with it after the pack's, before its own */
	const struct net_policy *network; /* NULL or mode none: no NIC (net/policy.h) */
	const struct sandbox_mounts *mounts; /* NULL or n == 0: none; syntax checked
					      * (sandbox_mounts_parse), the policy is the manager's */
	const char *from_snapshot;        /* NULL, or start from this snapshot (snapshots.h):
					   * pack and shape are the snapshot's (any given must
					   * match), no network, no mounts */
	/* Internal, never from a client: start from this saved VM (vmm_save) instead of booting,
	 * the shape above being the saved VM's; boot_mode says how ("fork", "snapshot"). */
	const char *from_state;
	int from_memory_fd;               /* > 0: from_state is a fork base's device state and
					   * this its sealed RAM (restored copy-on-write) */
	const char *from_boot_mode;
	const char *from_pack_digest;     /* the saved VM's pack: the pack found must be it (409) */
};

/* A consistent copy of one sandbox's public state (no pointers into the table). */
struct sandbox_info {
	char id[SANDBOX_ID_LEN + 1];
	char language_pack[CATALOG_NAME_MAX + 1];
	enum sandbox_state state;
	unsigned vcpus;
	unsigned memory_mib;
	unsigned timeout_s;
	unsigned overlay_mib;
	unsigned idle_timeout_s;          /* 0: none */
	unsigned cpu_weight;
	int64_t created_wall_ns;
	int64_t expires_wall_ns;
	int64_t last_activity_wall_ns;
	int64_t age_ms;
	uint64_t execs_run;
	unsigned execs_running;
	pid_t vmm_pid;
	int64_t boot_ms;
	const char *boot_mode;            /* "cold", "clone", "pool", "fork" or "snapshot" */
	char failure[512];
	struct sandbox_labels labels;
	struct sandbox_mounts mounts;     /* resolved host paths and owners */
};

struct sandbox_exec_request {
	const char *code;
	size_t code_len;
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool has_stdin;
	uint32_t timeout_ms;              /* 0: pack default */
	char *const *env;                 /* "NAME=value" */
	size_t envc;
	bool has_max_output;
	uint64_t max_output_bytes;        /* per stream, when has_max_output */
	const struct channel_sink *sink;  /* NULL: buffered; else streamed (channel.h) */
	const char *context_id;           /* NULL: a fresh process; else that context's
					   * interpreter (contexts.h) */
	bool fresh_interpreter;           /* never through the guest's fork server */
};

/* A background process (POST /sandboxes/{id}/processes): the pack's interpreter with code, or
 * a command (argv) of its own. */
struct sandbox_process_request {
	const char *code;                 /* when argc == 0 */
	size_t code_len;
	char *const *argv;                /* the command; argc == 0: run code */
	size_t argc;
	char *const *env;                 /* "NAME=value" */
	size_t envc;
	const char *cwd;                  /* NULL: the guest's home directory */
	bool has_stdin;                   /* stdin stays open for manager_process_stdin() */
	const char *tag;                  /* NULL: none */
	uint32_t timeout_ms;              /* > 0: killed that long after its start (procs.h) */
};

struct manager_stats {
	unsigned total;
	unsigned booting;
	unsigned ready;
	unsigned failed;
	unsigned destroying;
	unsigned paused;                  /* pausing, paused and resuming */
	uint64_t created_total;
	uint64_t create_failures_total;
	uint64_t execs_total;
	unsigned pool_ready;              /* pooled clones waiting, all packs */
	const struct catalog *pool_catalog; /* the generation pool_ready_by_pack counts against */
	unsigned pool_ready_by_pack[CATALOG_PACKS_MAX]; /* in pool_catalog's order */
	unsigned pool_size;               /* target per pooled pack */
	const char *pool_packs;           /* the pooled packs (config's; NULL: every pack) */
	uint64_t pool_handouts_total;
	uint64_t pool_refills_deferred_total; /* refill pauses for create bursts (pool.h) */
	uint64_t pool_shed_total;         /* clones given back under memory pressure */
	bool pool_memory_low;             /* refills wait for host memory */
	unsigned max_sandboxes;           /* in force (flag or derived) */
	bool max_sandboxes_derived;       /* from host memory, not --max-sandboxes */
	bool memory_known;                /* the fields below were read this time */
	uint64_t memory_total_mib;
	uint64_t memory_available_mib;
	uint64_t memory_reserve_mib;
	uint64_t memory_booting_mib;      /* promised to creates still booting (counted out of
					   * the available memory when admitting) */
	uint64_t sandbox_cost_mib;        /* at most, one sandbox of the default pack's shape */
	uint64_t headroom_sandboxes;      /* such sandboxes that would be admitted now */
	uint64_t memory_rejections_total; /* creates refused for host memory */
	bool snapshots;                   /* templates in use */
	unsigned templates_ready;
	unsigned templates_building;
	unsigned templates_failed;
	unsigned templates_evicted_total;
};

struct manager;
struct metrics;

/* The manager borrows catalog and driver (they outlive it). Starts the expiry thread. */
int manager_create(const struct manager_config *cfg, const struct catalog *catalog,
		   struct vmm_driver *driver, struct manager **out, struct ember_error **err);
/* Pause to disk and resume (docs/api.md "Pause and resume"). pause: a ready sandbox (no
 * mounts, no network, a driver that can save, nothing but background processes in flight,
 * else 409) is quiesced, its VM's whole state written to the state dir and its VMM stopped;
 * its lifetime clock stops and --max-paused-s runs instead. resume: a paused one gets a new
 * VMM from that state; processes, contexts, files and output rings are as they were, clock
 * and entropy fresh. A failure after the guest was quiesced fails the sandbox (502/504). */
int manager_pause(struct manager *m, const char *id, struct sandbox_info *info,
		  struct ember_error **err);
int manager_resume(struct manager *m, const char *id, struct sandbox_info *info,
		   struct ember_error **err);

/* Forks (docs/api.md "Snapshots and forks"): count new sandboxes (1..max_fork), each starting
 * from the source's memory and files as they are now (its processes and contexts are not
 * carried over), with its own id, entropy and clock; the source is stopped while its state is
 * saved, then runs on. labels/timeout_s: NULL/0 for the source's. All or nothing. *infos is
 * malloc'd (count entries). The source must be one a pause takes (409 otherwise). */
int manager_fork(struct manager *m, const char *id, unsigned count,
		 const struct sandbox_labels *labels, unsigned timeout_s,
		 struct sandbox_info **infos, struct ember_error **err);
/* Named snapshots: made of a ready sandbox (which runs on), listed, looked up, deleted.
 * EMBER_E_CONFLICT without a state dir. */
struct snapshot_info;
int manager_snapshot_create(struct manager *m, const char *id,
			    const struct sandbox_labels *labels, struct snapshot_info *info,
			    struct ember_error **err);
int manager_snapshot_list(struct manager *m, struct snapshot_info **infos, size_t *count,
			  struct ember_error **err);
int manager_snapshot_get(struct manager *m, const char *snap_id, struct snapshot_info *info,
			 struct ember_error **err);
int manager_snapshot_delete(struct manager *m, const char *snap_id, struct ember_error **err);

/* Refuses new creates (503), waits for boots in progress, then destroys every sandbox (in-flight
 * requests on them fail with 409) or, with keep_vms, lets go of them and leaves their VMs and
 * records for a later daemon to re-attach. The manager stays usable for reads. */
void manager_shutdown(struct manager *m, bool keep_vms);

struct manager_recovery {
	unsigned reattached;   /* live sandboxes taken over from an earlier daemon */
	unsigned cleaned;      /* dead or unusable sandbox directories removed */
	unsigned strays;       /* VMM processes without a usable record, killed */
};

/* The catalog generation in force (what GET /packs lists and creates choose from). Valid until
 * manager_free, also after a reload replaced it. */
const struct catalog *manager_catalog(struct manager *m);
/* Reads packs.json again (SIGHUP, POST /packs/reload): when it parses, names files that exist
 * and keeps the kernel and initramfs, it is in force when this returns: new packs can be
 * created, removed ones cannot (live sandboxes of them keep running), the pool drops clones of
 * removed and changed packs and fills the new ones, and templates of changed packs are made
 * again (their key has the image's digest). Otherwise nothing changes and err says why.
 * Reloads run one at a time; *diff says what this one changed. */
int manager_reload(struct manager *m, struct catalog_diff *diff, struct ember_error **err);

/* After manager_recover(): starts template prewarming and the warm-pool filler. */
void manager_start_background(struct manager *m);

/* At startup, before serving: re-attaches every sandbox an earlier daemon left in the run
 * directory whose VM still runs and answers, and removes everything else there. */
void manager_recover(struct manager *m, struct manager_recovery *out);
/* manager_shutdown(m, false) if not done yet, stops the expiry thread, frees. No request may
 * still be running (stop the API server first). */
void manager_free(struct manager *m);

/* Boots a sandbox; returns once the guest agent answered (or fails, leaving nothing behind). */
int manager_create_sandbox(struct manager *m, const struct sandbox_create_request *req,
			   struct sandbox_info *info, struct ember_error **err);
int manager_get(struct manager *m, const char *id, struct sandbox_info *info,
		struct ember_error **err);
/* The sandbox object's `network` member: {"mode": "none"}, or the policy, addresses and the
 * counters read now (net/egress.h). New reference; NULL with err set. */
json_t *manager_network_json(struct manager *m, const char *id, struct ember_error **err);
/* PATCH /sandboxes/{id}/network: replaces the allow list (and the deny list when has_deny) of
 * a ready networked sandbox; 409 for one without a network. */
int manager_network_update(struct manager *m, const char *id, const struct net_policy *patch,
			   bool has_deny, struct ember_error **err);
/* A snapshot of all sandboxes; *infos is malloc'd. */
int manager_list(struct manager *m, struct sandbox_info **infos, size_t *count,
		 struct ember_error **err);
int manager_exec(struct manager *m, const char *id, const struct sandbox_exec_request *req,
		 struct channel_exec_result *res, struct ember_error **err);
/* --max-exec-timeout-ms: the longest timeout_ms an exec may ask for (the E2B interpreter asks
 * for it: E2B's server puts no limit on a run, its SDK's own timeout ends it). */
unsigned manager_max_exec_timeout_ms(const struct manager *m);
/* Sets a ready (or failed) sandbox's remaining lifetime to timeout_s from now (1 to
 * --max-timeout-s), rewrites its record and fills info. 409 while it boots or is destroyed. */
int manager_set_timeout(struct manager *m, const char *id, unsigned timeout_s,
			struct sandbox_info *info, struct ember_error **err);
/* Returns once the VM process is gone and its files are removed. */
int manager_destroy(struct manager *m, const char *id, struct ember_error **err);
/* The newest min(size, VMM_CONSOLE_RING_BYTES) bytes of the sandbox's guest console into out
 * (*len of them) and *total, every byte its console received (0 and 0 while it boots). */
int manager_console(struct manager *m, const char *id, void *out, size_t size, size_t *len,
		    uint64_t *total, struct ember_error **err);
/* The guest process table (tests, debugging). */
int manager_ps(struct manager *m, const char *id, struct proto_process **procs, size_t *count,
	       struct ember_error **err);
void manager_stats(struct manager *m, struct manager_stats *stats);
/* A VMM process the manager runs: a sandbox's, or a pooled clone's. */
struct manager_vmm {
	pid_t pid;
	bool pooled;
};
/* Every VMM of a sandbox (past its boot) and of a pooled clone, now (template builds are not
 * included); *out is malloc'd. */
int manager_vmms(struct manager *m, struct manager_vmm **out, size_t *count,
		 struct ember_error **err);
/* The daemon's counters and latency histograms (metrics.h), recorded by the manager; lives
 * until manager_free. */
struct metrics *manager_metrics(struct manager *m);

/* Code contexts (contexts.h, docs/api.md "Contexts"), on a ready sandbox like exec. */
struct sandbox_context_request {
	enum proto_context_language language; /* PROTO_LANG_NONE: the pack's (else python) */
	const char *cwd;                  /* NULL: the guest's home directory */
	char *const *env;                 /* "NAME=value" */
	size_t envc;
};

/* Starts the interpreter; returns once it is ready. 400 for python in a pack without it, 429
 * beyond --max-contexts. */
int manager_context_create(struct manager *m, const char *id,
			   const struct sandbox_context_request *req, struct sandbox_context *out,
			   struct ember_error **err);
int manager_context_get(struct manager *m, const char *id, const char *cid,
			struct sandbox_context *out, struct ember_error **err);
/* out has room for SANDBOX_CONTEXTS_MAX. */
int manager_context_list(struct manager *m, const char *id, struct sandbox_context *out,
			 size_t *count, struct ember_error **err);
/* Kills its interpreter (an exec running in it ends as killed). */
int manager_context_delete(struct manager *m, const char *id, const char *cid,
			   struct ember_error **err);
/* A fresh interpreter, same settings; 409 while an exec runs in it. */
int manager_context_restart(struct manager *m, const char *id, const char *cid,
			    struct sandbox_context *out, struct ember_error **err);

/* Background processes (procs.h). start: returns once the guest reported its pid. */
int manager_process_start(struct manager *m, const char *id,
			  const struct sandbox_process_request *req, struct procs_info *info,
			  struct ember_error **err);
/* A reference to the sandbox's process table (procs_unref() it), for reads and follows; it stays
 * readable after the sandbox is gone. */
int manager_procs(struct manager *m, const char *id, struct procs **out,
		  struct ember_error **err);
int manager_process_stdin(struct manager *m, const char *id, int32_t pid, const uint8_t *data,
			  size_t len, bool fin, struct ember_error **err);
int manager_process_signal(struct manager *m, const char *id, int32_t pid, int sig,
			   struct ember_error **err);

/* Files (docs/api.md "Files"): like exec, on a ready sandbox only (404 unknown, 409 booting or
 * being destroyed, 502 failed), each counting as activity. The errors are the channel's
 * (channel.h). A transfer holds a reference on its sandbox until manager_transfer_close(). */
int manager_fs(struct manager *m, const char *id, const struct proto_fs_request *req,
	       struct proto_fs_reply *reply, struct ember_error **err);

struct manager_transfer;

int manager_download_open(struct manager *m, const char *id, const char *path,
			  struct manager_transfer **out, struct proto_fs_entry *entry,
			  struct ember_error **err);
/* channel_download_read(): 0 at the end, -1 on failure. */
ssize_t manager_download_read(struct manager_transfer *t, void *buf, size_t max,
			      struct ember_error **err);
int manager_upload_open(struct manager *m, const char *id, const struct proto_fs_request *req,
			struct manager_transfer **out, struct ember_error **err);
int manager_upload_write(struct manager_transfer *t, const void *data, size_t len,
			 struct ember_error **err);
int manager_upload_finish(struct manager_transfer *t, struct proto_fs_reply *reply,
			  struct ember_error **err);
/* Ends a transfer (CANCELs one still running) and drops its reference. NULL is fine. */
void manager_transfer_close(struct manager_transfer *t);

#endif
