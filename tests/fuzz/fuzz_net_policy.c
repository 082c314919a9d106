/* libFuzzer target: the network policy parsers (src/net/policy.c). The first byte picks the
 * `network` object of a create (even) or the PATCH body (odd), and which modes the daemon
 * enables; the rest is JSON. What a parser accepts must write back as JSON that parses to the
 * same rules, copy deeply, and answer name queries without reading out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/policy.h"

static bool same_rules(const struct net_rule *a, const struct net_rule *b, size_t n)
{
	return n == 0 || memcmp(a, b, n * sizeof(*a)) == 0;
}

static bool same_policy(const struct net_policy *a, const struct net_policy *b)
{
	return a->nallow == b->nallow && a->ndeny == b->ndeny &&
	       same_rules(a->allow, b->allow, a->nallow) && same_rules(a->deny, b->deny, a->ndeny);
}

/* Each allow domain rule's own name (or one below a wildcard) is asked for. */
static void ask_names(const struct net_policy *p)
{
	char name[NET_DOMAIN_MAX + 3];
	uint16_t ports[NET_RULES_MAX];
	size_t i, n;
	bool any;

	for (i = 0; i < p->nallow; i++) {
		const struct net_rule *r = &p->allow[i];

		if (r->kind != NET_RULE_DOMAIN)
			continue;
		strcpy(name, r->wildcard ? "a." : "");
		strcat(name, r->domain);
		if (net_policy_name_allowed(p, name, &any, ports, NET_RULES_MAX, &n) &&
		    p->mode == NET_MODE_ALLOWLIST && !any && n == 0)
			abort(); /* allowed on a port rule, but no port given */
		if (n > NET_RULES_MAX)
			abort();
	}
	net_policy_name_allowed(p, "example.com", &any, ports, 1, &n);
}

static void check_accepted(const struct net_policy *p, unsigned modes)
{
	struct net_policy again, copy;
	json_t *out = net_policy_to_json(p);

	if (out == NULL)
		abort();
	if (p->mode == NET_MODE_NONE) {
		/* a PATCH's rules written back under mode none would be refused: compare lists */
		json_object_set_new(out, "mode", json_string("open"));
		modes |= NET_MODE_BIT(NET_MODE_OPEN);
	}
	if (net_policy_parse(out, modes, &again, NULL) < 0 || !same_policy(p, &again))
		abort();
	json_decref(out);
	net_policy_release(&again);
	if (net_policy_copy(p, &copy, NULL) < 0 || copy.mode != p->mode || !same_policy(p, &copy))
		abort();
	ask_names(&copy);
	net_policy_release(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned modes = NET_MODE_BIT(NET_MODE_NONE);
	struct net_policy p;
	json_t *obj;
	bool has_deny;
	int rc;

	if (size < 1)
		return 0;
	if (!(data[0] & 2))
		modes |= NET_MODE_BIT(NET_MODE_ALLOWLIST);
	if (!(data[0] & 4))
		modes |= NET_MODE_BIT(NET_MODE_OPEN);
	obj = json_loadb((const char *)data + 1, size - 1, JSON_ALLOW_NUL, NULL);
	if (obj == NULL)
		return 0;
	if (data[0] % 2 == 0)
		rc = net_policy_parse(obj, modes, &p, NULL);
	else
		rc = net_policy_parse_patch(obj, &p, &has_deny, NULL);
	json_decref(obj);
	if (rc < 0) {
		if (p.allow != NULL || p.deny != NULL || p.nallow != 0 || p.ndeny != 0)
			abort();
		return 0;
	}
	if (p.nallow > NET_RULES_MAX || p.ndeny > NET_RULES_MAX)
		abort();
	check_accepted(&p, modes);
	net_policy_release(&p);
	return 0;
}
