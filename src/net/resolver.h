/* resolver.h - the DNS responder every networked sandbox gets as its only resolver (its
 * resolv.conf names the host end of its link; nftables redirects udp/53 there to the socket this
 * module binds). It answers only names the sandbox's policy allows: others get NXDOMAIN, AAAA gets
 * an empty answer (the sandbox network is IPv4 only). Allowed queries go to the upstream server
 * through the uplink, and every A record of an answer is handed to the allow callback (which puts
 * it in the sandbox's nftables set) before the answer reaches the guest, so a connection right
 * after the lookup is allowed. Owned by egress.c; one thread serves every sandbox. Nothing a guest
 * sends is trusted: queries are parsed strictly (dns.h) and answered only from the guest's address on
 * its TAP, at most RESOLVER_PENDING_PER_SANDBOX of a sandbox wait upstream at once (its own share),
 * and unanswered ones are forgotten after RESOLVER_TIMEOUT_MS. */
#ifndef EMBER_NET_RESOLVER_H
#define EMBER_NET_RESOLVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/dns.h"
#include "net/policy.h"
#include "util/error.h"

/* Queries of one sandbox waiting upstream at once (each sandbox has its own). */
#define RESOLVER_PENDING_PER_SANDBOX 32
#define RESOLVER_TIMEOUT_MS 5000
#define RESOLVER_TTL_FLOOR_S 30

/* Called on the resolver's thread for an allowed name's A records, before the answer is sent:
 * any_port, or the ports[] the matching rules name. Returns 0, or -1 to answer SERVFAIL. */
typedef int (*resolver_allow_fn)(void *ctx, const char *sandbox_id,
				 const struct dns_a_record *recs, size_t n, bool any_port,
				 const uint16_t *ports, size_t nports);

struct resolver_config {
	struct sockaddr_in upstream;     /* --egress-dns */
	const char *uplink;              /* queries leave by this interface (SO_BINDTODEVICE;
					  * not for a loopback upstream) */
	uint32_t mark;                   /* SO_MARK of the upstream socket (the egress route) */
	resolver_allow_fn allow;
	void *ctx;
};

struct resolver;

int resolver_start(const struct resolver_config *cfg, struct resolver **out,
		   struct ember_error **err);
/* Stops the thread and closes every socket. */
void resolver_stop(struct resolver *r);

/* Serves sandbox_id on a new UDP socket bound to host_ip (host byte order) on device (its TAP;
 * NULL: any), port chosen by the kernel (*port), answering only datagrams from guest_ip. The
 * policy is copied. */
int resolver_add(struct resolver *r, const char *sandbox_id, const char *device, uint32_t host_ip,
		 uint32_t guest_ip, const struct net_policy *policy, uint16_t *port,
		 struct ember_error **err);
/* Replaces the sandbox's policy (copied) and forgets its queries still upstream (their answers
 * would be judged by the old one; the guest's resolver asks again). */
int resolver_set_policy(struct resolver *r, const char *sandbox_id,
			const struct net_policy *policy, struct ember_error **err);
/* Closes the sandbox's socket and forgets its pending queries; unknown ids are ignored. */
void resolver_remove(struct resolver *r, const char *sandbox_id);

/* Queries answered, refused (NXDOMAIN/REFUSED) and failed, for tests and logs. */
struct resolver_stats {
	uint64_t answered;
	uint64_t refused;
	uint64_t failed;
};
void resolver_stats(struct resolver *r, struct resolver_stats *out);

#endif
