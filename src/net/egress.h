/* egress.h - the owner of sandbox networking on the host (docs/network.md). One per daemon,
 * made from the --network-modes / --egress-* flags. It owns:
 *   - the daemon-wide setup, made at egress_create() and removed by egress_free(): a routing
 *     table and rules for the subnet, an nftables table `ip emberd_g<table>` that masquerades
 *     the subnet out of the uplink, and forwarding on the uplink;
 *   - the subnet's /30 slots, one per networked sandbox;
 *   - each networked sandbox's link (struct egress_link): its TAP, its nftables table
 *     `inet emberd_<subnet tag>_<sandbox id>` (policy, dynamic sets, counters), its tc limits,
 *     its resolver socket, and a file `network.json` in its run directory that a restarted
 *     daemon adopts. The subnet tag (4 hex digits of --egress-subnet) keeps two daemons'
 *     TAPs (`emb<tag>s<slot>`) and tables apart;
 *   - the resolver thread (resolver.h).
 * The manager calls it; it never calls the manager. Thread-safe. */
#ifndef EMBER_NET_EGRESS_H
#define EMBER_NET_EGRESS_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/policy.h"
#include "proto/messages.h"
#include "util/error.h"

#define EGRESS_TABLE_PREFIX "emberd_"
#define EGRESS_FILE "network.json"
#define EGRESS_SUBNET_DEFAULT "10.231.0.0/16"
#define EGRESS_RATE_MBIT_DEFAULT 100u
#define EGRESS_MAX_CONNECTIONS_DEFAULT 256u

struct egress_config {
	unsigned modes;               /* NET_MODE_BIT mask (--network-modes); none is always in */
	const char *uplink;           /* NULL: no networked sandboxes */
	const char *dns;              /* ADDR[:PORT]; NULL: the first nameserver of resolv.conf */
	const char *gateway;          /* NULL: the main table's default route via the uplink */
	const char *subnet;           /* NULL: EGRESS_SUBNET_DEFAULT */
	unsigned rate_mbit;           /* 0: unlimited */
	unsigned max_connections;     /* >= 1 */
};

struct egress;
struct egress_link;

/* Checks the settings and, with an uplink, makes the daemon-wide setup and starts the resolver.
 * Removes what an earlier daemon with the same subnet left of it first. */
int egress_create(const struct egress_config *cfg, struct egress **out, struct ember_error **err);
/* Removes the daemon-wide setup; every link must have been detached or released before. */
void egress_free(struct egress *e);

/* One line for logs and /healthz: "off" or "allowlist,open via eth0 (dns 192.0.2.53:53)". */
const char *egress_description(const struct egress *e);

/* Whether a create may ask for policy p here: the mode enabled (--network-modes), an uplink
 * configured for any mode but none. EMBER_E_INVALID naming the field or the flag. */
int egress_check(const struct egress *e, const struct net_policy *p, struct ember_error **err);

/* A TAP with nothing behind it (no address, no forwarding, no table) for a template VM's NIC:
 * the template's guest never configures it. Returns the descriptor; the TAP goes with it. */
int egress_dummy_tap(struct egress *e, struct ember_error **err);

/* Makes sandbox_id's link for policy p (mode allowlist or open): a slot, the TAP, the table,
 * the limits, the resolver socket, and run_dir/network.json. */
int egress_attach(struct egress *e, const char *sandbox_id, const char *run_dir,
		  const struct net_policy *p, struct egress_link **out, struct ember_error **err);

/* For a sandbox a restarted daemon re-attached: reads run_dir/network.json and rebuilds the
 * table (its dynamic sets start empty), the resolver socket and the slot. Its TAP is the one
 * the VMM still holds. EMBER_E_NOT_FOUND when the sandbox had no network. */
int egress_adopt(struct egress *e, const char *sandbox_id, const char *run_dir,
		 struct egress_link **out, struct ember_error **err);

/* The TAP's descriptor for the VMM (owned by the link; -1 once handed over and closed, or for
 * an adopted link). */
int egress_link_tap_fd(const struct egress_link *l);
/* For a VMM that opens the TAP by name (vmm_driver_tap_by_name(): Firecracker), once its
 * driver made the TAP persistent and before the VMM opens it: records in network.json that the
 * TAP is persistent, then closes the daemon's descriptor (a TAP someone holds cannot be opened
 * by name). From then on egress_detach() deletes the TAP by name. No-op without a descriptor. */
int egress_link_close_tap(struct egress *e, struct egress_link *l, struct ember_error **err);
const char *egress_link_tap_name(const struct egress_link *l);
/* The link's mode (allowlist or open); fixed for its life. */
enum net_mode egress_link_mode(const struct egress_link *l);
/* What the guest's HELLO carries. */
void egress_link_hello(const struct egress_link *l, struct proto_hello_net *out);

/* Replaces the link's allow list (and deny list when has_deny) atomically: a new table with
 * empty dynamic sets, the resolver's policy, network.json. On failure nothing changed. */
int egress_update(struct egress *e, struct egress_link *l, const struct net_policy *patch,
		  bool has_deny, struct ember_error **err);

/* The sandbox object's `network` member: mode, allow, deny, address, gateway, and the
 * counters read from its table now. NULL when out of memory. */
json_t *egress_link_json(struct egress *e, struct egress_link *l);

/* Removes everything of the link (table, resolver socket, limits, file, TAP descriptor; a
 * persistent TAP by name) and frees it. Safe on NULL. */
void egress_detach(struct egress *e, struct egress_link *l);
/* For a sandbox left running for a later daemon (--keep-sandboxes): stops serving its DNS and
 * frees the link, but leaves its table and network.json for egress_adopt(). Safe on NULL. */
void egress_forget(struct egress *e, struct egress_link *l);

/* After recovery: removes nftables tables named after sandboxes not in keep[] and persistent
 * TAPs (`emb<tag>s<N>`, a Firecracker sandbox's) of slots no adopted link holds: what a killed
 * daemon left. Returns how many. Works without an uplink too (a daemon restarted without the
 * flags still cleans up). */
unsigned egress_sweep(struct egress *e, const char *const *keep, size_t nkeep);

#endif
