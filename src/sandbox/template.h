/* template.h - VM templates for fast create: one booted-then-snapshotted VM per boot shape,
 * keyed by the content of everything that shapes the VM (pack, kernel, initramfs, VMM binary,
 * driver, accelerator, vCPUs, memory, writable layer). Used by the sandbox manager (clones are
 * restored from a template's files instead of booting) and by ember-vm (template_snapshot_vm).
 * A template's files never change once made: a different input gives a different key and a new
 * directory. See docs/snapshots.md.
 * Ownership: the store owns its templates and their files; a clone holds a reference
 * (template_acquire/template_release) and only reads the paths while it does. */
#ifndef EMBER_SANDBOX_TEMPLATE_H
#define EMBER_SANDBOX_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/catalog.h"
#include "sandbox/digest.h"
#include "util/error.h"
#include "vmm/vmm.h"

#define TEMPLATE_KEY_LEN 64 /* hex sha256 */

struct template_shape {
	const struct pack *pack;
	unsigned vcpus;
	unsigned memory_mib;
	unsigned overlay_mib;
	bool nic;             /* a virtio-net NIC (networked sandboxes): a template of its own */
};

struct template_store;
struct template;

/* What bounds the store: each template holds its guest's RAM twice (the file under the run dir,
 * often a tmpfs, and its sealed memfd), and a build boots a VM like a create. */
struct template_limits {
	unsigned max_templates;   /* entries at once (building, ready or failed); beyond, the
				   * least recently used one no clone uses is evicted, and when
				   * every one is in use no new template is made (creates boot
				   * cold). 0: no cap */
	/* A build boots a VM: it takes one of the owner's boot slots first (waiting at most
	 * until deadline_ms; false: none, the build is put off to the next use) and gives it
	 * back when the VM is gone. NULL: builds take no slot. Called without the store's lock. */
	bool (*take_boot_slot)(void *ctx, int64_t deadline_ms);
	void (*give_boot_slot)(void *ctx);
	/* A TAP descriptor for a template VM with a NIC (the template's guest never configures
	 * it; each clone gets its own TAP). NULL: NIC templates cannot be built. */
	int (*nic_fd)(void *ctx, struct ember_error **err);
	void *ctx;
};

/* The digest of everything every saved VM of a daemon shares besides its pack: kernel,
 * initramfs and VMM binary (by content, not names or times: a rebuilt kernel or a QEMU upgrade
 * is a new template, and a snapshot or paused sandbox of the old ones is refused), driver,
 * accelerator and the operator's kernel arguments. Reads those files whole (~0.1 s). */
int template_fingerprint_base(const struct catalog *catalog, struct vmm_driver *driver,
			      char out[DIGEST_HEX_LEN + 1], struct ember_error **err);

/* dir: where template directories live (created; leftovers of unfinished builds removed).
 * base_digest: template_fingerprint_base()'s, part of every key. boot_timeout_ms bounds a
 * template boot.
 * The store borrows catalog for its kernel and initramfs only, which a reload never changes
 * (catalogdiff.h); shapes name packs of any generation, and a pack is known by its name and
 * its image's content. */
int template_store_create(const char *dir, const struct catalog *catalog,
			  struct vmm_driver *driver, const char *base_digest,
			  unsigned boot_timeout_ms, const struct template_limits *limits,
			  struct template_store **out, struct ember_error **err);
/* Waits for builds in progress; with remove_files, deletes every template directory (clones
 * still running keep their mappings: an unlinked file lives on while mapped). */
void template_store_free(struct template_store *store, bool remove_files);

/* A ready template for shape with a reference taken, or NULL when there is none yet; then a
 * background build is started (unless one runs, or the last one failed less than a minute ago). */
struct template *template_acquire(struct template_store *store, const struct template_shape *shape);
void template_release(struct template *t);
/* Starts a background build for shape if no template exists (--prewarm). */
void template_prewarm(struct template_store *store, const struct template_shape *shape);
/* Marks a template unusable (a clone failed to restore from it); it is rebuilt on next use. */
void template_discard(struct template *t);

/* The RAM file on disk: root's, 0400, kept for a later daemon; clones do not use it. */
const char *template_memory_path(const struct template *t);
/* The sealed memfd holding the template's RAM (vmm/guestmem.h), owned by the template: what a
 * clone maps privately (vmm_boot_config.memory_fd). Valid while a reference is held. */
int template_memory_fd(const struct template *t);
const char *template_state_path(const struct template *t);
const char *template_key(const struct template *t);
/* The template's pinned pack image: clones must attach this one, not the catalog's path. */
const char *template_pack_image(const struct template *t);

/* The snapshot step itself, for the store and for tools: boots a VM per base with its RAM in
 * memory_path (shared), waits for its agent, runs pack's interpreter once (warming the guest's
 * page cache for every clone; pack may be NULL), closes the channel, lets the agent go idle,
 * writes the device state to state_path, and stops the VM. run_dir holds the VM's sockets. */
/* Runs pack's interpreter once on an empty program through ch: what a template does before its
 * snapshot (the page cache), and what a pooled clone does before it is handed out (its VMM's
 * code translations and the pages of its private copy: otherwise the client's first exec pays
 * for them, ~4x a warm one under TCG). */
struct channel;
int template_warm_up(struct channel *ch, const struct pack *pack, struct ember_error **err);

int template_snapshot_vm(struct vmm_driver *driver, const struct vmm_boot_config *base,
			 const struct pack *pack, const char *run_dir, const char *id,
			 const char *memory_path, const char *state_path, int64_t deadline_ms,
			 struct ember_error **err);

/* The snapshot step for a VM saved whole (vmm_save(): a fork's source): loads whole_state into
 * a VM that stays stopped, its RAM a shared mapping of memory_fd (guestmem_create(): filled by
 * the load), writes its device state to state_path and stops it. memory_fd and state_path are
 * then a template of that VM: clones restore from them sharing the RAM copy-on-write, once
 * the caller sealed the memfd (guestmem_seal()). base: the saved VM's pack and shape
 * (template_boot_config). */
int template_rebase_vm(struct vmm_driver *driver, const struct vmm_boot_config *base,
		       const char *run_dir, const char *id, const char *whole_state, int memory_fd,
		       const char *state_path, int64_t deadline_ms, struct ember_error **err);

/* Fills the boot configuration fields shared by a template and its clones. */
void template_boot_config(const struct template_shape *shape, const struct catalog *catalog,
			  struct vmm_boot_config *cfg, char *cmdline_extra, size_t size);

struct template_stats {
	unsigned ready;
	unsigned building;
	unsigned failed;
	unsigned clones_live;   /* references held */
	unsigned evicted_total; /* removed to stay under max_templates */
};
void template_store_stats(struct template_store *store, struct template_stats *stats);

#endif
