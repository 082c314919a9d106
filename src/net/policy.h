/* policy.h - a sandbox's network policy (the `network` object of POST /sandboxes and the body of
 * PATCH /sandboxes/{id}/network): parsed strictly from JSON, written back as JSON, and asked
 * which names a sandbox may resolve. Pure data: no sockets, no nftables (egress.h applies it).
 * The caller owns a struct net_policy and frees it with net_policy_release(). */
#ifndef EMBER_NET_POLICY_H
#define EMBER_NET_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define NET_RULES_MAX 256        /* entries in `allow`, and in `deny` */
#define NET_DOMAIN_MAX 253       /* a name without its trailing dot */
#define NET_RULE_TEXT_MAX 272    /* an entry as written back: "*." + name + ":65535" */

enum net_mode {
	NET_MODE_NONE = 0,       /* no NIC at all (the default) */
	NET_MODE_ALLOWLIST,      /* only what `allow` names */
	NET_MODE_OPEN,           /* everything but the always-blocked set and `deny` */
};
#define NET_MODE_BIT(mode) (1u << (mode))

enum net_rule_kind {
	NET_RULE_DOMAIN,         /* "pypi.org", "*.pythonhosted.org", "api.example.com:443" */
	NET_RULE_CIDR,           /* "203.0.113.7", "203.0.113.0/24", "203.0.113.0/24:443" */
};

struct net_rule {
	enum net_rule_kind kind;
	bool wildcard;                      /* "*.x": every name strictly below x, not x itself */
	char domain[NET_DOMAIN_MAX + 1];    /* lower case, no "*." and no trailing dot */
	uint32_t addr;                      /* IPv4 network address, host byte order */
	uint8_t prefix;                     /* 0-32; a bare address is /32 */
	uint16_t port;                      /* 0: every port */
	char text[NET_RULE_TEXT_MAX + 1];   /* canonical form (lower case, network address) */
};

struct net_policy {
	enum net_mode mode;
	struct net_rule *allow;
	size_t nallow;
	struct net_rule *deny;
	size_t ndeny;
};

/* Parses a `network` object: {"mode": "none"|"allowlist"|"open", "allow": [..], "deny": [..]},
 * "allow"/"deny" optional (absent = empty), no other fields. allowed_modes is a mask of
 * NET_MODE_BIT()s (--network-modes); a mode outside it is refused. Errors are EMBER_E_INVALID
 * and name the field: "field `network.allow[3]` ...". IPv6 entries are refused (the sandbox
 * network is IPv4 only). On failure *out is left empty. */
int net_policy_parse(const json_t *obj, unsigned allowed_modes, struct net_policy *out,
		     struct ember_error **err);

/* Parses the body of PATCH /sandboxes/{id}/network: {"allow": [..]} with an optional "deny"
 * (absent: the current deny list stays). Fills *allow (and *deny, *has_deny) like
 * net_policy_parse; field names in errors are "allow[3]" / "deny[0]". */
int net_policy_parse_patch(const json_t *obj, struct net_policy *out, bool *has_deny,
			   struct ember_error **err);

/* {"mode": .., "allow": ["canonical text", ..], "deny": [..]}; NULL when out of memory. */
json_t *net_policy_to_json(const struct net_policy *p);

/* A deep copy (for the manager's record and the resolver's own copy). */
int net_policy_copy(const struct net_policy *src, struct net_policy *dst,
		    struct ember_error **err);

void net_policy_release(struct net_policy *p);

/* Whether a sandbox under p may resolve name (lower case, no trailing dot; the caller checked
 * its syntax). A `deny` domain rule that matches wins. In allowlist mode the name must match an
 * `allow` domain rule; *any_port is then true when a matching rule has no port, and ports[]
 * gets the ports of the matching rules otherwise (at most max, *nports set). In open mode every
 * name not denied is allowed with *any_port = true. */
bool net_policy_name_allowed(const struct net_policy *p, const char *name, bool *any_port,
			     uint16_t *ports, size_t max, size_t *nports);

/* Parses a comma-separated list of mode names ("none,allowlist") into a NET_MODE_BIT mask
 * (--network-modes). "none" must be among them. */
int net_modes_parse(const char *text, unsigned *mask, struct ember_error **err);
/* "none,allowlist" for a mask (for logs and /healthz). */
void net_modes_format(unsigned mask, char *out, size_t size);

const char *net_mode_name(enum net_mode mode);

#endif
