/* Unit tests for HOST:PORT parsing (src/util/hostport.c): what --addr, EMBERD_ADDR, emberctl's
 * --addr and the Host header accept, and the messages for what they refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/hostport.h"

/* The message of a refused text (fails the test when it is accepted). */
static void assert_refused(const char *text, unsigned flags, const char *mention)
{
	struct ember_error *err = NULL;
	struct hostport hp;

	if (hostport_parse(text, flags, &hp, &err) == 0)
		fail_msg("`%s` was accepted (host `%s`, port %u)", text, hp.host, hp.port);
	assert_non_null(err);
	assert_int_equal(err->kind, EMBER_E_INVALID);
	if (strstr(err->message, mention) == NULL)
		fail_msg("`%s`: message `%s` does not mention `%s`", text, err->message, mention);
	ember_error_free(&err);
}

static struct hostport accepted(const char *text, unsigned flags)
{
	struct ember_error *err = NULL;
	struct hostport hp;

	if (hostport_parse(text, flags, &hp, &err) < 0)
		fail_msg("`%s` was refused: %s", text, err->message);
	return hp;
}

static void ports_from_1_to_65535_are_accepted(void **state)
{
	struct hostport hp;

	(void)state;
	hp = accepted("127.0.0.1:7777", 0);
	assert_string_equal(hp.host, "127.0.0.1");
	assert_int_equal(hp.port, 7777);
	assert_true(hp.has_port);
	hp = accepted("localhost:1", 0);
	assert_string_equal(hp.host, "localhost");
	assert_int_equal(hp.port, 1);
	hp = accepted("0.0.0.0:65535", 0);
	assert_int_equal(hp.port, 65535);
	hp = accepted("127.0.0.1:00080", 0); /* leading zeros are still decimal 80 */
	assert_int_equal(hp.port, 80);
}

static void ipv6_literals_need_brackets(void **state)
{
	struct hostport hp;

	(void)state;
	hp = accepted("[::1]:7777", 0);
	assert_string_equal(hp.host, "::1");
	assert_int_equal(hp.port, 7777);
	hp = accepted("[fe80::1%lo]:80", 0);
	assert_string_equal(hp.host, "fe80::1%lo");
	assert_refused("::1:7777", 0, "[IPV6]:PORT");
	assert_refused("[::1]7777", 0, "[IPV6]:PORT");
	assert_refused("[::1:7777", 0, "[IPV6]:PORT");
	assert_refused("[]:7777", 0, "empty");
}

static void ports_out_of_range_or_not_decimal_are_refused(void **state)
{
	(void)state;
	assert_refused("127.0.0.1:99999", HOSTPORT_ZERO_PORT, "port `99999` is not a number "
		       "between 0 and 65535");
	assert_refused("127.0.0.1:65536", 0, "between 1 and 65535");
	assert_refused("127.0.0.1:4294967377", 0, "4294967377"); /* 2^32 + 81 wraps to 81 */
	assert_refused("127.0.0.1:000065536", 0, "65536");
	assert_int_equal(accepted("127.0.0.1:0000000080", 0).port, 80);
	assert_refused("127.0.0.1:+80", 0, "`+80`");
	assert_refused("127.0.0.1:-1", 0, "`-1`");
	assert_refused("127.0.0.1: 80", 0, "` 80`");
	assert_refused("127.0.0.1:80 ", 0, "`80 `");
	assert_refused("127.0.0.1:0x50", 0, "`0x50`");
	assert_refused("127.0.0.1:http", 0, "`http`");
	assert_refused("127.0.0.1:", 0, "port ``");
	assert_refused("127.0.0.1:80/", 0, "`80/`");
}

static void port_zero_only_for_a_listener(void **state)
{
	struct hostport hp;

	(void)state;
	hp = accepted("127.0.0.1:0", HOSTPORT_ZERO_PORT);
	assert_int_equal(hp.port, 0);
	assert_true(hp.has_port);
	assert_refused("127.0.0.1:0", 0, "port 0");
	assert_refused("127.0.0.1:00", 0, "port 0");
}

static void host_and_port_must_both_be_there(void **state)
{
	(void)state;
	assert_refused("localhost", HOSTPORT_ZERO_PORT, "no port");
	assert_refused("[::1]", 0, "no port");
	assert_refused(":7777", 0, "empty");
	assert_refused("", 0, "empty");
	assert_refused("a:b:c", 0, "[IPV6]:PORT");
}

static void a_long_host_is_refused_not_cut(void **state)
{
	char text[HOSTPORT_HOST_MAX + 16];

	(void)state;
	memset(text, 'a', HOSTPORT_HOST_MAX);
	strcpy(text + HOSTPORT_HOST_MAX, ":80");
	assert_refused(text, 0, "too long");
	strcpy(text + HOSTPORT_HOST_MAX - 1, ":80"); /* 255 characters: fits */
	assert_int_equal(strlen(accepted(text, 0).host), HOSTPORT_HOST_MAX - 1);
}

static void host_header_may_omit_the_port(void **state)
{
	struct hostport hp;

	(void)state;
	hp = accepted("LocalHost", HOSTPORT_PORT_OPTIONAL);
	assert_string_equal(hp.host, "LocalHost");
	assert_false(hp.has_port);
	hp = accepted("[::1]", HOSTPORT_PORT_OPTIONAL);
	assert_string_equal(hp.host, "::1");
	hp = accepted("localhost:7777", HOSTPORT_PORT_OPTIONAL);
	assert_int_equal(hp.port, 7777);
	assert_refused("localhost:99999", HOSTPORT_PORT_OPTIONAL, "99999");
	assert_refused("localhost:", HOSTPORT_PORT_OPTIONAL, "port ``");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ports_from_1_to_65535_are_accepted),
		cmocka_unit_test(ipv6_literals_need_brackets),
		cmocka_unit_test(ports_out_of_range_or_not_decimal_are_refused),
		cmocka_unit_test(port_zero_only_for_a_listener),
		cmocka_unit_test(host_and_port_must_both_be_there),
		cmocka_unit_test(a_long_host_is_refused_not_cut),
		cmocka_unit_test(host_header_may_omit_the_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
