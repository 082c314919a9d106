/* recover.h - at startup, take over the sandboxes an earlier daemon left in the run directory:
 * re-attach live ones, remove dead ones, kill VMMs without a record (docs/operations.md).
 * Called by the manager (manager_recover) before the API serves and before the pool starts.
 * Never touches the manager's table: each re-attached sandbox is handed over through adopt(),
 * which owns it from then on. */
#ifndef EMBER_SANDBOX_RECOVER_H
#define EMBER_SANDBOX_RECOVER_H

#include "sandbox/catalog.h"
#include "sandbox/manager.h"
#include "vmm/vmm.h"

struct sandbox;

struct recover_env {
	const char *run_dir;
	const struct catalog *catalog;
	struct vmm_driver *driver;
	struct egress *egress;        /* re-adopts a sandbox's network; NULL: none */
	/* Paused sandboxes: where their saved VMs are (NULL: none are taken over) and what they
	 * must have been saved with besides their pack (the manager's base fingerprint). */
	const char *paused_dir;
	const char *base_digest;
	void (*adopt)(void *ctx, struct sandbox *sb);  /* a live, READY one, or a PAUSED one
							 * (no VMM, no channel) */
	void *ctx;
};

void recover_run_dir(const struct recover_env *env, struct manager_recovery *out);

#endif
