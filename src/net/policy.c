/* policy.c - parses, copies and writes back a sandbox's network policy, and answers which names
 * it may resolve. Called by the API request decoder, the manager (its record) and the resolver.
 * Never touches the network or nftables: egress.c turns a policy into rules.
 *
 * Entries are strict: a domain (labels of [a-z0-9-_], 1-63 bytes, not starting or ending with
 * '-', at least two labels, at most 253 bytes, an optional leading "*." and ":port") or an IPv4
 * address or CIDR in dotted-quad form without leading zeros (the address must be the network
 * address of its prefix), with an optional ":port". Duplicate entries (same canonical text) are
 * kept once: the first one written stays, later ones are dropped. */
#include "net/policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

#define KIND EMBER_E_INVALID
#define ENTRY_FORMS                                                                          \
	"a domain (example.com, *.example.com, example.com:443) or an IPv4 address or CIDR " \
	"(203.0.113.7, 203.0.113.0/24, 203.0.113.0/24:443)"

static const char *const mode_names[] = {
	[NET_MODE_NONE] = "none",
	[NET_MODE_ALLOWLIST] = "allowlist",
	[NET_MODE_OPEN] = "open",
};

const char *net_mode_name(enum net_mode mode)
{
	if ((size_t)mode >= ARRAY_SIZE(mode_names))
		return "unknown";
	return mode_names[mode];
}

static int mode_from_name(const char *name, size_t len, enum net_mode *mode)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(mode_names); i++) {
		if (strlen(mode_names[i]) == len && memcmp(mode_names[i], name, len) == 0) {
			*mode = (enum net_mode)i;
			return 0;
		}
	}
	return -1;
}

/* The entry as quoted in an error: at most 64 bytes, anything but printable ASCII (and the
 * backtick that delimits it) shown as '?', so a message never carries control bytes. */
static void quote_entry(const char *text, size_t len, char out[65])
{
	size_t i, n = len < 64 ? len : 64;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];

		out[i] = c >= 0x20 && c < 0x7f && c != '`' ? (char)c : '?';
	}
	out[n] = '\0';
}

struct entry_ctx {
	const char *field;       /* "network.allow[3]" */
	const char *text;        /* the entry as written */
	size_t len;
	struct ember_error **err;
};

static int entry_error(const struct entry_ctx *ctx, const char *why)
{
	char quoted[65];

	quote_entry(ctx->text, ctx->len, quoted);
	return ember_error_set(ctx->err, KIND, 0, "field `%s`: `%s`%s %s; expected " ENTRY_FORMS,
			       ctx->field, quoted, ctx->len > 64 ? "..." : "", why);
}

/* Digits only, no leading zero (but "0" itself when zero_ok), at most max. */
static int parse_decimal(const char *s, size_t len, unsigned max, bool zero_ok, unsigned *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max || (v == 0 && !zero_ok))
		return -1;
	*out = (unsigned)v;
	return 0;
}

static bool looks_like_ipv6(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);

	return (len > 0 && s[0] == '[') ||
	       (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) != NULL);
}

static bool only_digits_dots_slash(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!(isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == '/'))
			return false;
	return true;
}

static int parse_dotted_quad(const char *s, size_t len, uint32_t *addr)
{
	uint32_t v = 0;
	size_t start = 0, i;
	int parts = 0;

	for (i = 0; i <= len; i++) {
		unsigned octet;

		if (i < len && s[i] != '.')
			continue;
		if (parts == 4 || parse_decimal(s + start, i - start, 255, true, &octet) < 0)
			return -1;
		v = (v << 8) | octet;
		parts++;
		start = i + 1;
	}
	if (parts != 4)
		return -1;
	*addr = v;
	return 0;
}

static int parse_cidr(const struct entry_ctx *ctx, const char *host, size_t len,
		      struct net_rule *rule)
{
	const char *slash = memchr(host, '/', len);
	size_t addr_len = slash != NULL ? (size_t)(slash - host) : len;
	unsigned prefix = 32;
	uint32_t mask;

	if (parse_dotted_quad(host, addr_len, &rule->addr) < 0)
		return entry_error(ctx, "is not an IPv4 address (four numbers 0-255 without leading "
					"zeros)");
	if (slash != NULL &&
	    parse_decimal(slash + 1, len - addr_len - 1, 32, true, &prefix) < 0)
		return entry_error(ctx, "has a bad prefix length (0-32, no leading zeros)");
	mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
	if ((rule->addr & ~mask) != 0) {
		uint32_t net = rule->addr & mask;
		char why[128];

		snprintf(why, sizeof(why), "is not a network address (did you mean %u.%u.%u.%u/%u?)",
			 net >> 24, (net >> 16) & 0xff, (net >> 8) & 0xff, net & 0xff, prefix);
		return entry_error(ctx, why);
	}
	rule->kind = NET_RULE_CIDR;
	rule->prefix = (uint8_t)prefix;
	return 0;
}

static bool label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Checks each label of a lower-cased name; *labels gets their count. */
static int check_labels(const struct entry_ctx *ctx, const char *name, size_t len, int *labels)
{
	size_t start = 0, i;

	*labels = 0;
	for (i = 0; i <= len; i++) {
		size_t n;

		if (i < len && name[i] != '.') {
			if (!label_char(name[i]))
				return entry_error(ctx, name[i] == '*'
						   ? "has a `*` that is not the whole first label"
						   : "has a character outside a-z 0-9 - _");
			continue;
		}
		n = i - start;
		if (n == 0 || n > 63)
			return entry_error(ctx, "has an empty label or one longer than 63 bytes");
		if (name[start] == '-' || name[i - 1] == '-')
			return entry_error(ctx, "has a label starting or ending with '-'");
		(*labels)++;
		start = i + 1;
	}
	return 0;
}

static int parse_domain(const struct entry_ctx *ctx, const char *host, size_t len,
			struct net_rule *rule)
{
	int labels;
	size_t i;

	if (len >= 2 && host[0] == '*' && host[1] == '.') {
		rule->wildcard = true;
		host += 2;
		len -= 2;
	}
	if (len > NET_DOMAIN_MAX)
		return entry_error(ctx, "has a name longer than 253 bytes");
	for (i = 0; i < len; i++)
		rule->domain[i] = (char)tolower((unsigned char)host[i]);
	rule->domain[len] = '\0';
	if (check_labels(ctx, rule->domain, len, &labels) < 0)
		return -1;
	if (labels < 2)
		return entry_error(ctx, "names a single label (a domain needs at least two, "
					"such as example.com)");
	rule->kind = NET_RULE_DOMAIN;
	return 0;
}

static void format_rule_text(struct net_rule *rule)
{
	size_t n;

	if (rule->kind == NET_RULE_DOMAIN) {
		n = (size_t)snprintf(rule->text, sizeof(rule->text), "%s%s",
				     rule->wildcard ? "*." : "", rule->domain);
	} else {
		n = (size_t)snprintf(rule->text, sizeof(rule->text), "%u.%u.%u.%u",
				     rule->addr >> 24, (rule->addr >> 16) & 0xff,
				     (rule->addr >> 8) & 0xff, rule->addr & 0xff);
		if (rule->prefix != 32)
			n += (size_t)snprintf(rule->text + n, sizeof(rule->text) - n, "/%u",
					      rule->prefix);
	}
	if (rule->port != 0)
		snprintf(rule->text + n, sizeof(rule->text) - n, ":%u", rule->port);
}

/* One entry of `allow` or `deny` into *rule (kind, address or name, port, canonical text). */
static int parse_rule(const struct entry_ctx *ctx, struct net_rule *rule)
{
	const char *colon;
	size_t host_len = ctx->len;

	memset(rule, 0, sizeof(*rule));
	if (ctx->len == 0)
		return entry_error(ctx, "is empty");
	if (ctx->len > NET_RULE_TEXT_MAX || memchr(ctx->text, '\0', ctx->len) != NULL)
		return entry_error(ctx, "is longer than 272 bytes or holds a NUL");
	if (looks_like_ipv6(ctx->text, ctx->len)) {
		char quoted[65];

		quote_entry(ctx->text, ctx->len, quoted);
		return ember_error_set(ctx->err, KIND, 0, "field `%s`: `%s`: IPv6 is not supported: "
				       "the sandbox network is IPv4 only", ctx->field, quoted);
	}
	colon = memchr(ctx->text, ':', ctx->len);
	if (colon != NULL) {
		unsigned port;

		host_len = (size_t)(colon - ctx->text);
		if (parse_decimal(colon + 1, ctx->len - host_len - 1, 65535, false, &port) < 0)
			return entry_error(ctx, "has a bad port (1-65535, digits only, no leading "
						"zeros)");
		rule->port = (uint16_t)port;
	}
	if (host_len == 0)
		return entry_error(ctx, "has no name or address before its port");
	if (only_digits_dots_slash(ctx->text, host_len)) {
		if (parse_cidr(ctx, ctx->text, host_len, rule) < 0)
			return -1;
	} else if (parse_domain(ctx, ctx->text, host_len, rule) < 0) {
		return -1;
	}
	format_rule_text(rule);
	return 0;
}

static bool rule_listed(const struct net_rule *rules, size_t n, const struct net_rule *rule)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(rules[i].text, rule->text) == 0)
			return true;
	return false;
}

/* obj[key] (absent: an empty list) into a fresh array of rules. prefix is "network." for a
 * create and "" for a PATCH body, so errors name `network.allow[3]` or `allow[3]`. */
static int parse_rule_list(json_t *obj, const char *prefix, const char *key,
			   struct net_rule **out, size_t *n, struct ember_error **err)
{
	_cleanup_free_ struct net_rule *rules = NULL;
	json_t *list = json_object_get(obj, key), *item;
	size_t i, count = 0;

	*out = NULL;
	*n = 0;
	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return ember_error_set(err, KIND, 0, "field `%s%s` must be an array of strings",
				       prefix, key);
	if (json_array_size(list) > NET_RULES_MAX)
		return ember_error_set(err, KIND, 0, "field `%s%s` has more than %d entries",
				       prefix, key, NET_RULES_MAX);
	if (json_array_size(list) == 0)
		return 0;
	rules = calloc(json_array_size(list), sizeof(*rules));
	if (rules == NULL)
		return ember_error_oom(err);
	json_array_foreach(list, i, item) {
		char field[48];
		struct entry_ctx ctx = { .field = field, .err = err };

		snprintf(field, sizeof(field), "%s%s[%zu]", prefix, key, i);
		if (!json_is_string(item))
			return ember_error_set(err, KIND, 0, "field `%s` must be a string: "
					       ENTRY_FORMS, field);
		ctx.text = json_string_value(item);
		ctx.len = json_string_length(item);
		if (parse_rule(&ctx, &rules[count]) < 0)
			return -1;
		if (!rule_listed(rules, count, &rules[count]))
			count++;
	}
	*out = steal_pointer(&rules);
	*n = count;
	return 0;
}

static int check_keys(json_t *obj, const char *prefix, const char *const *allowed,
		      struct ember_error **err)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value) {
		const char *const *a;
		char quoted[65];

		(void)value;
		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (*a != NULL)
			continue;
		quote_entry(key, strlen(key), quoted);
		return ember_error_set(err, KIND, 0, "unknown field `%s%s` (expected %s)", prefix,
				       quoted, prefix[0] != '\0' ? "mode, allow, deny" : "allow, deny");
	}
	return 0;
}

static int parse_mode(json_t *obj, unsigned allowed_modes, enum net_mode *mode,
		      struct ember_error **err)
{
	json_t *value = json_object_get(obj, "mode");
	char quoted[65];

	if (value == NULL)
		return ember_error_set(err, KIND, 0, "field `network.mode` is required: none, "
				       "allowlist or open");
	if (!json_is_string(value) ||
	    mode_from_name(json_string_value(value), json_string_length(value), mode) < 0) {
		if (!json_is_string(value))
			return ember_error_set(err, KIND, 0, "field `network.mode` must be a string: "
					       "none, allowlist or open");
		quote_entry(json_string_value(value), json_string_length(value), quoted);
		return ember_error_set(err, KIND, 0, "field `network.mode`: unknown mode `%s` "
				       "(none, allowlist or open)", quoted);
	}
	if (*mode != NET_MODE_NONE && !(allowed_modes & NET_MODE_BIT(*mode)))
		return ember_error_set(err, KIND, 0, "field `network.mode`: mode `%s` is not "
				       "enabled on this daemon (--network-modes)",
				       net_mode_name(*mode));
	return 0;
}

int net_policy_parse(const json_t *obj, unsigned allowed_modes, struct net_policy *out,
		     struct ember_error **err)
{
	static const char *const keys[] = { "mode", "allow", "deny", NULL };
	json_t *o = (json_t *)obj; /* jansson's getters are not const-correct */
	struct net_policy p = { .mode = NET_MODE_NONE };

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return ember_error_set(err, KIND, 0, "field `network` must be an object "
				       "({\"mode\": \"none\"|\"allowlist\"|\"open\", \"allow\": [..], "
				       "\"deny\": [..]})");
	if (check_keys(o, "network.", keys, err) < 0 || parse_mode(o, allowed_modes, &p.mode, err) < 0)
		return -1;
	if (parse_rule_list(o, "network.", "allow", &p.allow, &p.nallow, err) < 0 ||
	    parse_rule_list(o, "network.", "deny", &p.deny, &p.ndeny, err) < 0) {
		net_policy_release(&p);
		return -1;
	}
	if (p.mode == NET_MODE_NONE && (p.nallow > 0 || p.ndeny > 0)) {
		net_policy_release(&p);
		return ember_error_set(err, KIND, 0, "field `network.%s` needs mode allowlist or "
				       "open (mode none has no network)",
				       json_array_size(json_object_get(o, "allow")) > 0 ? "allow"
											: "deny");
	}
	*out = p;
	return 0;
}

int net_policy_parse_patch(const json_t *obj, struct net_policy *out, bool *has_deny,
			   struct ember_error **err)
{
	static const char *const keys[] = { "allow", "deny", NULL };
	json_t *o = (json_t *)obj;
	struct net_policy p = { .mode = NET_MODE_NONE };

	memset(out, 0, sizeof(*out));
	*has_deny = false;
	if (!json_is_object(o))
		return ember_error_set(err, KIND, 0, "the body must be an object {\"allow\": [..], "
				       "\"deny\": [..]}");
	if (check_keys(o, "", keys, err) < 0)
		return -1;
	if (json_object_get(o, "allow") == NULL)
		return ember_error_set(err, KIND, 0, "field `allow` is required (an array of "
				       "entries, possibly empty)");
	if (parse_rule_list(o, "", "allow", &p.allow, &p.nallow, err) < 0 ||
	    parse_rule_list(o, "", "deny", &p.deny, &p.ndeny, err) < 0) {
		net_policy_release(&p);
		return -1;
	}
	*has_deny = json_object_get(o, "deny") != NULL;
	*out = p;
	return 0;
}

static json_t *rules_to_json(const struct net_rule *rules, size_t n)
{
	json_t *list = json_array();
	size_t i;

	if (list == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (json_array_append_new(list, json_string(rules[i].text)) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

json_t *net_policy_to_json(const struct net_policy *p)
{
	json_t *obj = json_object();

	if (obj == NULL)
		return NULL;
	if (json_object_set_new(obj, "mode", json_string(net_mode_name(p->mode))) < 0 ||
	    json_object_set_new(obj, "allow", rules_to_json(p->allow, p->nallow)) < 0 ||
	    json_object_set_new(obj, "deny", rules_to_json(p->deny, p->ndeny)) < 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static int copy_rules(const struct net_rule *src, size_t n, struct net_rule **dst)
{
	*dst = NULL;
	if (n == 0)
		return 0;
	*dst = malloc(n * sizeof(**dst));
	if (*dst == NULL)
		return -1;
	memcpy(*dst, src, n * sizeof(**dst));
	return 0;
}

int net_policy_copy(const struct net_policy *src, struct net_policy *dst,
		    struct ember_error **err)
{
	struct net_policy p = { .mode = src->mode, .nallow = src->nallow, .ndeny = src->ndeny };

	memset(dst, 0, sizeof(*dst));
	if (copy_rules(src->allow, src->nallow, &p.allow) < 0 ||
	    copy_rules(src->deny, src->ndeny, &p.deny) < 0) {
		net_policy_release(&p);
		return ember_error_oom(err);
	}
	*dst = p;
	return 0;
}

void net_policy_release(struct net_policy *p)
{
	free(p->allow);
	free(p->deny);
	memset(p, 0, sizeof(*p));
}

/* "*.x" matches names strictly below x; a plain rule the name itself. */
static bool rule_matches(const struct net_rule *rule, const char *name, size_t len)
{
	size_t dlen;

	if (rule->kind != NET_RULE_DOMAIN)
		return false;
	if (!rule->wildcard)
		return strcmp(rule->domain, name) == 0;
	dlen = strlen(rule->domain);
	return len > dlen + 1 && name[len - dlen - 1] == '.' &&
	       memcmp(name + len - dlen, rule->domain, dlen) == 0;
}

static void add_port(uint16_t port, uint16_t *ports, size_t max, size_t *nports)
{
	size_t i;

	for (i = 0; i < *nports; i++)
		if (ports[i] == port)
			return;
	if (*nports < max)
		ports[(*nports)++] = port;
}

bool net_policy_name_allowed(const struct net_policy *p, const char *name, bool *any_port,
			     uint16_t *ports, size_t max, size_t *nports)
{
	size_t len = strlen(name), i;
	bool matched = false;

	*any_port = false;
	*nports = 0;
	if (p->mode == NET_MODE_NONE)
		return false;
	/* Any matching deny domain rule refuses the name, whatever its port: a name is resolved
	 * for every port at once, and refusing too much is the safe side of a deny list. */
	for (i = 0; i < p->ndeny; i++)
		if (rule_matches(&p->deny[i], name, len))
			return false;
	if (p->mode == NET_MODE_OPEN) {
		*any_port = true;
		return true;
	}
	for (i = 0; i < p->nallow; i++) {
		if (!rule_matches(&p->allow[i], name, len))
			continue;
		matched = true;
		if (p->allow[i].port == 0)
			*any_port = true;
		else if (ports != NULL)
			add_port(p->allow[i].port, ports, max, nports);
	}
	if (*any_port)
		*nports = 0;
	return matched;
}

int net_modes_parse(const char *text, unsigned *mask, struct ember_error **err)
{
	const char *item = text;
	unsigned m = 0;

	*mask = 0;
	for (;;) {
		const char *end = strchr(item, ',');
		size_t len = end != NULL ? (size_t)(end - item) : strlen(item);
		enum net_mode mode;
		char quoted[65];

		if (len == 0)
			return ember_error_set(err, KIND, 0, "--network-modes `%.64s`: empty item "
					       "(a comma-separated list of none, allowlist, open)",
					       text);
		if (mode_from_name(item, len, &mode) < 0) {
			quote_entry(item, len, quoted);
			return ember_error_set(err, KIND, 0, "--network-modes: unknown mode `%s` "
					       "(none, allowlist, open)", quoted);
		}
		m |= NET_MODE_BIT(mode);
		if (end == NULL)
			break;
		item = end + 1;
	}
	if (!(m & NET_MODE_BIT(NET_MODE_NONE)))
		return ember_error_set(err, KIND, 0, "--network-modes must include none (got "
				       "`%.64s`)", text);
	*mask = m;
	return 0;
}

void net_modes_format(unsigned mask, char *out, size_t size)
{
	size_t i, n = 0;

	if (size == 0)
		return;
	out[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(mode_names); i++) {
		if (!(mask & NET_MODE_BIT(i)))
			continue;
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n > 0 ? "," : "",
				      mode_names[i]);
		if (n >= size)
			return;
	}
}
