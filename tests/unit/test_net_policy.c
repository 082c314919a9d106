/* Unit tests for the network policy parser and name matching (src/net/policy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/policy.h"

#define ALL_MODES \
	(NET_MODE_BIT(NET_MODE_NONE) | NET_MODE_BIT(NET_MODE_ALLOWLIST) | NET_MODE_BIT(NET_MODE_OPEN))

/* Parses text as a `network` object; on failure copies the error message into msg. */
static int parse_in(const char *text, unsigned modes, struct net_policy *p, char *msg,
		    size_t size)
{
	struct ember_error *err = NULL;
	json_t *obj = json_loads(text, JSON_ALLOW_NUL, NULL);
	int rc;

	assert_non_null(obj);
	rc = net_policy_parse(obj, modes, p, &err);
	json_decref(obj);
	if (rc < 0) {
		assert_non_null(err);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		snprintf(msg, size, "%s", err->message);
		ember_error_free(&err);
		assert_null(p->allow);
		assert_int_equal(p->nallow, 0);
	} else {
		assert_null(err);
	}
	return rc;
}

/* Parses {"mode":"allowlist","allow":[entry]} and expects the canonical text (or failure). */
static void expect_entry(const char *entry, const char *canonical)
{
	char text[1024], msg[1100];
	struct net_policy p;
	int rc;

	snprintf(text, sizeof(text), "{\"mode\":\"allowlist\",\"allow\":[\"x.org\",%s]}", entry);
	rc = parse_in(text, ALL_MODES, &p, msg, sizeof(msg));
	if (canonical == NULL) {
		if (rc == 0)
			fail_msg("entry %s was accepted as %s", entry, p.allow[1].text);
		assert_non_null(strstr(msg, "network.allow[1]"));
		return;
	}
	if (rc < 0)
		fail_msg("entry %s refused: %s", entry, msg);
	assert_int_equal(p.nallow, 2);
	assert_string_equal(p.allow[1].text, canonical);
	net_policy_release(&p);
}

static void good_domain_entries_become_canonical(void **state)
{
	(void)state;
	expect_entry("\"example.com\"", "example.com");
	expect_entry("\"Example.COM\"", "example.com");
	expect_entry("\"*.pythonhosted.org\"", "*.pythonhosted.org");
	expect_entry("\"api.example.com:443\"", "api.example.com:443");
	expect_entry("\"*.a.b:65535\"", "*.a.b:65535");
	expect_entry("\"x_y.example-1.com:1\"", "x_y.example-1.com:1");
	expect_entry("\"123.com\"", "123.com");
}

static void a_name_of_253_bytes_is_the_longest(void **state)
{
	char label[64], last[62], name[300], entry[310];

	(void)state;
	memset(label, 'a', 63);
	label[63] = '\0';
	memset(last, 'b', 61);
	last[61] = '\0';
	snprintf(name, sizeof(name), "%s.%s.%s.%s", label, label, label, last);
	assert_int_equal(strlen(name), 253);
	snprintf(entry, sizeof(entry), "\"*.%s:65535\"", name);
	snprintf(name + 253, sizeof(name) - 253, ":65535");
	memmove(name + 2, name, strlen(name) + 1);
	memcpy(name, "*.", 2);
	expect_entry(entry, name);
	memcpy(last, "bb", 2);
	last[60] = 'b';
	snprintf(name, sizeof(name), "\"%s.%s.%s.%sc\"", label, label, label, last);
	expect_entry(name, NULL);
}

static void good_address_entries_become_canonical(void **state)
{
	(void)state;
	expect_entry("\"203.0.113.7\"", "203.0.113.7");
	expect_entry("\"203.0.113.7/32\"", "203.0.113.7");
	expect_entry("\"203.0.113.0/24\"", "203.0.113.0/24");
	expect_entry("\"203.0.113.0/24:443\"", "203.0.113.0/24:443");
	expect_entry("\"203.0.113.7:8080\"", "203.0.113.7:8080");
	expect_entry("\"0.0.0.0/0\"", "0.0.0.0/0");
	expect_entry("\"10.0.0.0/8\"", "10.0.0.0/8");
	expect_entry("\"255.255.255.255\"", "255.255.255.255");
}

static void address_rule_fields_are_set(void **state)
{
	struct net_policy p;
	char msg[512];

	(void)state;
	assert_int_equal(parse_in("{\"mode\":\"open\",\"deny\":[\"192.168.4.0/22:22\","
				  "\"*.Evil.Example\"]}", ALL_MODES, &p, msg, sizeof(msg)), 0);
	assert_int_equal(p.mode, NET_MODE_OPEN);
	assert_int_equal(p.nallow, 0);
	assert_int_equal(p.ndeny, 2);
	assert_int_equal(p.deny[0].kind, NET_RULE_CIDR);
	assert_int_equal(p.deny[0].addr, 0xc0a80400u);
	assert_int_equal(p.deny[0].prefix, 22);
	assert_int_equal(p.deny[0].port, 22);
	assert_int_equal(p.deny[1].kind, NET_RULE_DOMAIN);
	assert_true(p.deny[1].wildcard);
	assert_string_equal(p.deny[1].domain, "evil.example");
	assert_int_equal(p.deny[1].port, 0);
	net_policy_release(&p);
}

static void bad_domain_entries_are_refused(void **state)
{
	char long_label[80], long_name[300];
	(void)state;
	expect_entry("\"localhost\"", NULL);
	expect_entry("\"\"", NULL);
	expect_entry("\"-a.com\"", NULL);
	expect_entry("\"a-.com\"", NULL);
	expect_entry("\"a..com\"", NULL);
	expect_entry("\".a.com\"", NULL);
	expect_entry("\"a.com.\"", NULL);
	expect_entry("\"a b.com\"", NULL);
	expect_entry("\"a.c\\u00f6m\"", NULL);
	expect_entry("\"a.com\\u0000x\"", NULL);
	expect_entry("\"*\"", NULL);
	expect_entry("\"*.com\"", NULL);
	expect_entry("\"a.*.com\"", NULL);
	expect_entry("\"*a.com\"", NULL);
	expect_entry("\"**.a.com\"", NULL);
	expect_entry("\"a.com:\"", NULL);
	expect_entry("\"a.com:0\"", NULL);
	expect_entry("\"a.com:65536\"", NULL);
	expect_entry("\"a.com:0443\"", NULL);
	expect_entry("\"a.com:+443\"", NULL);
	expect_entry("\"a.com:44x\"", NULL);
	expect_entry("\":443\"", NULL);
	expect_entry("42", NULL);
	expect_entry("null", NULL);
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	snprintf(long_name, sizeof(long_name), "\"%s\"", long_label);
	expect_entry(long_name, NULL);
	/* Four labels of 63 bytes: 255 bytes, over the 253 limit. */
	long_label[63] = '\0';
	snprintf(long_name, sizeof(long_name), "\"%s.%s.%s.%s\"", long_label, long_label,
		 long_label, long_label);
	expect_entry(long_name, NULL);
}

static void bad_address_entries_are_refused(void **state)
{
	(void)state;
	expect_entry("\"1.2.3\"", NULL);
	expect_entry("\"1.2.3.4.5\"", NULL);
	expect_entry("\"256.1.1.1\"", NULL);
	expect_entry("\"01.2.3.4\"", NULL);
	expect_entry("\"1..3.4\"", NULL);
	expect_entry("\"1.2.3.4/33\"", NULL);
	expect_entry("\"1.2.3.0/024\"", NULL);
	expect_entry("\"1.2.3.0/\"", NULL);
	expect_entry("\"1.2.3.0/24/24\"", NULL);
	expect_entry("\"1.2.3.4:99999\"", NULL);
}

static void expect_message(const char *text, const char *needle)
{
	struct net_policy p;
	char msg[1100];

	if (parse_in(text, ALL_MODES, &p, msg, sizeof(msg)) == 0)
		fail_msg("%s was accepted", text);
	if (strstr(msg, needle) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

static void messages_name_the_field_the_entry_and_the_form(void **state)
{
	char text[700], entry[200];

	(void)state;
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"a.com\",\"b.com\",\"c.com\",\"bad_\"]}",
		       "field `network.allow[3]`: `bad_`");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"bad_\"]}", "expected a domain");
	expect_message("{\"mode\":\"open\",\"deny\":[\"x.com\",\"y\"]}", "field `network.deny[1]`");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"203.0.113.7/24\"]}",
		       "did you mean 203.0.113.0/24?");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"::1\"]}",
		       "IPv6 is not supported: the sandbox network is IPv4 only");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"[2001:db8::1]:443\"]}",
		       "field `network.allow[0]`: `[2001:db8::1]:443`: IPv6 is not supported");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"2001:db8::/32\"]}", "IPv4 only");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"localhost\"]}", "single label");
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"a.com:0\"]}", "port");
	/* A long entry is quoted truncated to 64 bytes. */
	memset(entry, 'b', 100);
	entry[100] = '\0';
	snprintf(text, sizeof(text), "{\"mode\":\"allowlist\",\"allow\":[\"%s!\"]}", entry);
	entry[64] = '\0';
	strcat(entry, "`...");
	expect_message(text, entry);
	/* Control bytes are not copied into a message. */
	expect_message("{\"mode\":\"allowlist\",\"allow\":[\"a\\n.com\"]}", "`a?.com`");
}

static void object_level_errors_name_their_field(void **state)
{
	char text[8192];
	size_t n, i;

	(void)state;
	expect_message("{\"mode\":\"allowlist\",\"bogus\":1}", "unknown field `network.bogus`");
	expect_message("{\"allow\":[]}", "field `network.mode` is required");
	expect_message("{\"mode\":\"closed\"}", "field `network.mode`: unknown mode `closed`");
	expect_message("{\"mode\":\"Open\"}", "unknown mode `Open`");
	expect_message("{\"mode\":1}", "field `network.mode` must be a string");
	expect_message("{\"mode\":\"allowlist\",\"allow\":\"a.com\"}",
		       "field `network.allow` must be an array");
	expect_message("{\"mode\":\"open\",\"deny\":{}}", "field `network.deny` must be an array");
	expect_message("{\"mode\":\"none\",\"allow\":[\"a.com\"]}", "field `network.allow` needs "
		       "mode allowlist or open");
	expect_message("{\"mode\":\"none\",\"deny\":[\"a.com\"]}", "field `network.deny` needs");
	n = (size_t)snprintf(text, sizeof(text), "{\"mode\":\"allowlist\",\"allow\":[");
	for (i = 0; i <= NET_RULES_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"a%zu.com\"", i ? "," : "", i);
	snprintf(text + n, sizeof(text) - n, "]}");
	expect_message(text, "field `network.allow` has more than 256 entries");
}

static void not_an_object_is_refused(void **state)
{
	struct ember_error *err = NULL;
	struct net_policy p;
	json_t *s = json_string("open");

	(void)state;
	assert_int_equal(net_policy_parse(s, ALL_MODES, &p, &err), -1);
	assert_non_null(strstr(err->message, "field `network` must be an object"));
	ember_error_free(&err);
	json_decref(s);
}

static void modes_outside_the_mask_are_refused(void **state)
{
	struct net_policy p;
	char msg[512];

	(void)state;
	assert_int_equal(parse_in("{\"mode\":\"open\"}", NET_MODE_BIT(NET_MODE_NONE) |
				  NET_MODE_BIT(NET_MODE_ALLOWLIST), &p, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "mode `open` is not enabled on this daemon "
				    "(--network-modes)"));
	assert_int_equal(parse_in("{\"mode\":\"allowlist\"}", NET_MODE_BIT(NET_MODE_NONE), &p, msg,
				  sizeof(msg)), -1);
	/* none is always allowed, and mode none needs no entries. */
	assert_int_equal(parse_in("{\"mode\":\"none\"}", 0, &p, msg, sizeof(msg)), 0);
	assert_int_equal(p.mode, NET_MODE_NONE);
	net_policy_release(&p);
	assert_int_equal(parse_in("{\"mode\":\"none\",\"allow\":[],\"deny\":[]}", 0, &p, msg,
				  sizeof(msg)), 0);
	net_policy_release(&p);
}

static void duplicates_are_kept_once(void **state)
{
	struct net_policy p;
	char msg[512];

	(void)state;
	assert_int_equal(parse_in("{\"mode\":\"allowlist\",\"allow\":[\"a.com\",\"A.com\","
				  "\"1.2.3.4/32\",\"1.2.3.4\",\"a.com:1\"]}", ALL_MODES, &p, msg,
				  sizeof(msg)), 0);
	assert_int_equal(p.nallow, 3);
	assert_string_equal(p.allow[0].text, "a.com");
	assert_string_equal(p.allow[1].text, "1.2.3.4");
	assert_string_equal(p.allow[2].text, "a.com:1");
	net_policy_release(&p);
}

static void to_json_round_trips_and_copy_is_deep(void **state)
{
	struct net_policy p, again, copy;
	json_t *out;
	char msg[512], *text;

	(void)state;
	assert_int_equal(parse_in("{\"mode\":\"allowlist\",\"allow\":[\"PyPI.org\",\"*.x.io:443\","
				  "\"10.1.0.0/16\"],\"deny\":[\"bad.x.io\"]}", ALL_MODES, &p, msg,
				  sizeof(msg)), 0);
	out = net_policy_to_json(&p);
	assert_non_null(out);
	text = json_dumps(out, JSON_COMPACT);
	assert_string_equal(text, "{\"mode\":\"allowlist\",\"allow\":[\"pypi.org\",\"*.x.io:443\","
			    "\"10.1.0.0/16\"],\"deny\":[\"bad.x.io\"]}");
	assert_int_equal(net_policy_parse(out, ALL_MODES, &again, NULL), 0);
	assert_int_equal(again.nallow, p.nallow);
	assert_int_equal(again.ndeny, p.ndeny);
	assert_memory_equal(again.allow, p.allow, p.nallow * sizeof(*p.allow));
	assert_memory_equal(again.deny, p.deny, p.ndeny * sizeof(*p.deny));
	free(text);
	json_decref(out);
	assert_int_equal(net_policy_copy(&p, &copy, NULL), 0);
	net_policy_release(&p);
	assert_int_equal(copy.mode, NET_MODE_ALLOWLIST);
	assert_int_equal(copy.nallow, 3);
	assert_memory_equal(copy.allow, again.allow, 3 * sizeof(*copy.allow));
	assert_string_equal(copy.deny[0].text, "bad.x.io");
	net_policy_release(&copy);
	net_policy_release(&again);
	assert_null(copy.allow);
	assert_int_equal(copy.nallow, 0);
}

static void empty_policy_copies_and_writes_back(void **state)
{
	struct net_policy p = { .mode = NET_MODE_NONE }, copy;
	json_t *out;
	char *text;

	(void)state;
	assert_int_equal(net_policy_copy(&p, &copy, NULL), 0);
	assert_null(copy.allow);
	out = net_policy_to_json(&copy);
	text = json_dumps(out, JSON_COMPACT);
	assert_string_equal(text, "{\"mode\":\"none\",\"allow\":[],\"deny\":[]}");
	free(text);
	json_decref(out);
	net_policy_release(&copy);
}

static int patch_in(const char *text, struct net_policy *p, bool *has_deny, char *msg,
		    size_t size)
{
	struct ember_error *err = NULL;
	json_t *obj = json_loads(text, JSON_ALLOW_NUL, NULL);
	int rc;

	assert_non_null(obj);
	rc = net_policy_parse_patch(obj, p, has_deny, &err);
	json_decref(obj);
	if (rc < 0) {
		snprintf(msg, size, "%s", err->message);
		assert_int_equal(err->kind, EMBER_E_INVALID);
		ember_error_free(&err);
	}
	return rc;
}

static void patch_body_is_parsed_with_short_field_names(void **state)
{
	struct net_policy p;
	bool has_deny;
	char msg[1100];

	(void)state;
	assert_int_equal(patch_in("{\"allow\":[\"a.com\",\"1.2.3.0/24\"]}", &p, &has_deny, msg,
				  sizeof(msg)), 0);
	assert_false(has_deny);
	assert_int_equal(p.nallow, 2);
	assert_int_equal(p.ndeny, 0);
	net_policy_release(&p);
	assert_int_equal(patch_in("{\"allow\":[],\"deny\":[]}", &p, &has_deny, msg, sizeof(msg)),
			 0);
	assert_true(has_deny);
	assert_int_equal(p.nallow, 0);
	net_policy_release(&p);
	assert_int_equal(patch_in("{\"allow\":[\"a\",\"b.c\",\"d.e\",\"x\"]}", &p, &has_deny, msg,
				  sizeof(msg)), -1);
	assert_non_null(strstr(msg, "field `allow[0]`: `a`"));
	assert_null(strstr(msg, "network."));
	assert_int_equal(patch_in("{\"allow\":[],\"deny\":[\"ok.com\",\"::1\"]}", &p, &has_deny,
				  msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "field `deny[1]`: `::1`: IPv6"));
	assert_int_equal(patch_in("{\"deny\":[]}", &p, &has_deny, msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "field `allow` is required"));
	assert_int_equal(patch_in("{\"allow\":[],\"mode\":\"open\"}", &p, &has_deny, msg,
				  sizeof(msg)), -1);
	assert_non_null(strstr(msg, "unknown field `mode`"));
}

static struct net_policy policy_of(const char *text)
{
	struct net_policy p;
	char msg[512];

	if (parse_in(text, ALL_MODES, &p, msg, sizeof(msg)) < 0)
		fail_msg("%s", msg);
	return p;
}

static void names_match_exact_and_wildcard_rules(void **state)
{
	struct net_policy p = policy_of("{\"mode\":\"allowlist\",\"allow\":[\"pypi.org\","
					"\"*.pythonhosted.org\",\"203.0.113.0/24\"]}");
	uint16_t ports[4];
	size_t n;
	bool any;

	(void)state;
	assert_true(net_policy_name_allowed(&p, "pypi.org", &any, ports, 4, &n));
	assert_true(any);
	assert_int_equal(n, 0);
	assert_false(net_policy_name_allowed(&p, "www.pypi.org", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "pythonhosted.org", &any, ports, 4, &n));
	assert_true(net_policy_name_allowed(&p, "files.pythonhosted.org", &any, ports, 4, &n));
	assert_true(net_policy_name_allowed(&p, "a.b.pythonhosted.org", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "xpythonhosted.org", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "pythonhosted.org.evil", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "203.0.113.7", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "org", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "", &any, ports, 4, &n));
	net_policy_release(&p);
}

static void ports_of_matching_rules_are_collected_once(void **state)
{
	struct net_policy p = policy_of("{\"mode\":\"allowlist\",\"allow\":[\"api.x.com:443\","
					"\"*.x.com:8443\",\"api.x.com:443\",\"api.x.com:80\","
					"\"*.x.com:443\",\"y.com\",\"*.y.com:22\"]}");
	uint16_t ports[4];
	size_t n;
	bool any;

	(void)state;
	assert_true(net_policy_name_allowed(&p, "api.x.com", &any, ports, 4, &n));
	assert_false(any);
	assert_int_equal(n, 3);
	assert_int_equal(ports[0], 443);
	assert_int_equal(ports[1], 8443);
	assert_int_equal(ports[2], 80);
	assert_true(net_policy_name_allowed(&p, "api.x.com", &any, ports, 1, &n));
	assert_int_equal(n, 1);
	assert_true(net_policy_name_allowed(&p, "other.x.com", &any, ports, 4, &n));
	assert_int_equal(n, 2);
	assert_false(net_policy_name_allowed(&p, "x.com", &any, ports, 4, &n));
	/* A rule without a port opens every port of the name. */
	assert_true(net_policy_name_allowed(&p, "y.com", &any, ports, 4, &n));
	assert_true(any);
	assert_true(net_policy_name_allowed(&p, "a.y.com", &any, ports, 4, &n));
	assert_false(any);
	assert_int_equal(n, 1);
	assert_int_equal(ports[0], 22);
	net_policy_release(&p);
}

static void a_matching_deny_rule_wins(void **state)
{
	struct net_policy p = policy_of("{\"mode\":\"allowlist\",\"allow\":[\"*.x.com\",\"x.com\"],"
					"\"deny\":[\"bad.x.com\",\"*.worse.x.com:25\","
					"\"10.0.0.0/8\"]}");
	uint16_t ports[4];
	size_t n;
	bool any;

	(void)state;
	assert_true(net_policy_name_allowed(&p, "x.com", &any, ports, 4, &n));
	assert_true(net_policy_name_allowed(&p, "good.x.com", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "bad.x.com", &any, ports, 4, &n));
	assert_true(net_policy_name_allowed(&p, "a.bad.x.com", &any, ports, 4, &n));
	assert_true(net_policy_name_allowed(&p, "worse.x.com", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "a.worse.x.com", &any, ports, 4, &n));
	net_policy_release(&p);
}

static void open_mode_allows_every_name_not_denied(void **state)
{
	struct net_policy p = policy_of("{\"mode\":\"open\",\"deny\":[\"*.ads.example\"]}");
	uint16_t ports[4];
	size_t n = 9;
	bool any = false;

	(void)state;
	assert_true(net_policy_name_allowed(&p, "anything.org", &any, ports, 4, &n));
	assert_true(any);
	assert_int_equal(n, 0);
	assert_true(net_policy_name_allowed(&p, "ads.example", &any, ports, 4, &n));
	assert_false(net_policy_name_allowed(&p, "t.ads.example", &any, ports, 4, &n));
	assert_false(any);
	net_policy_release(&p);
	p = policy_of("{\"mode\":\"none\"}");
	assert_false(net_policy_name_allowed(&p, "anything.org", &any, ports, 4, &n));
	net_policy_release(&p);
}

static void modes_list_parses_and_formats(void **state)
{
	struct ember_error *err = NULL;
	unsigned mask;
	char out[64];

	(void)state;
	assert_int_equal(net_modes_parse("none", &mask, NULL), 0);
	assert_int_equal(mask, NET_MODE_BIT(NET_MODE_NONE));
	assert_int_equal(net_modes_parse("open,none,allowlist", &mask, NULL), 0);
	assert_int_equal(mask, ALL_MODES);
	net_modes_format(mask, out, sizeof(out));
	assert_string_equal(out, "none,allowlist,open");
	assert_int_equal(net_modes_parse("allowlist,none", &mask, NULL), 0);
	net_modes_format(mask, out, sizeof(out));
	assert_string_equal(out, "none,allowlist");
	net_modes_format(mask, out, 6);
	assert_string_equal(out, "none,");
	assert_int_equal(net_modes_parse("none,bogus", &mask, &err), -1);
	assert_non_null(strstr(err->message, "unknown mode `bogus`"));
	ember_error_free(&err);
	assert_int_equal(net_modes_parse("allowlist", &mask, &err), -1);
	assert_non_null(strstr(err->message, "must include none"));
	ember_error_free(&err);
	assert_int_equal(net_modes_parse("none,,open", &mask, &err), -1);
	assert_non_null(strstr(err->message, "empty item"));
	ember_error_free(&err);
	assert_int_equal(net_modes_parse("", &mask, NULL), -1);
	assert_int_equal(net_modes_parse("none,", &mask, NULL), -1);
	assert_int_equal(net_modes_parse(" none", &mask, NULL), -1);
	assert_int_equal(net_modes_parse("None", &mask, NULL), -1);
	assert_string_equal(net_mode_name(NET_MODE_ALLOWLIST), "allowlist");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_domain_entries_become_canonical),
		cmocka_unit_test(a_name_of_253_bytes_is_the_longest),
		cmocka_unit_test(good_address_entries_become_canonical),
		cmocka_unit_test(address_rule_fields_are_set),
		cmocka_unit_test(bad_domain_entries_are_refused),
		cmocka_unit_test(bad_address_entries_are_refused),
		cmocka_unit_test(messages_name_the_field_the_entry_and_the_form),
		cmocka_unit_test(object_level_errors_name_their_field),
		cmocka_unit_test(not_an_object_is_refused),
		cmocka_unit_test(modes_outside_the_mask_are_refused),
		cmocka_unit_test(duplicates_are_kept_once),
		cmocka_unit_test(to_json_round_trips_and_copy_is_deep),
		cmocka_unit_test(empty_policy_copies_and_writes_back),
		cmocka_unit_test(patch_body_is_parsed_with_short_field_names),
		cmocka_unit_test(names_match_exact_and_wildcard_rules),
		cmocka_unit_test(ports_of_matching_rules_are_collected_once),
		cmocka_unit_test(a_matching_deny_rule_wins),
		cmocka_unit_test(open_mode_allows_every_name_not_denied),
		cmocka_unit_test(modes_list_parses_and_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
