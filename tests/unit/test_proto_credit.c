/* Unit tests for the per-id data credit (src/proto/credit.c): the CREDIT payload and the
 * receiver's window account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/credit.h"
#include "proto/frame.h"

static void payload_roundtrips_and_refuses_zero_and_bad_sizes(void **state)
{
	uint8_t raw[PROTO_CREDIT_PAYLOAD];
	struct ember_error *err = NULL;
	uint32_t v = 0;

	(void)state;
	proto_credit_encode(raw, 0x01020304u);
	assert_int_equal(raw[0], 1);
	assert_int_equal(raw[3], 4);
	assert_int_equal(proto_credit_decode(raw, sizeof(raw), &v, NULL), 0);
	assert_int_equal(v, 0x01020304u);
	assert_int_equal(proto_credit_decode(raw, 3, &v, &err), -1);
	assert_int_equal(err->kind, EMBER_E_PROTOCOL);
	ember_error_free(&err);
	proto_credit_encode(raw, 0);
	assert_int_equal(proto_credit_decode(raw, sizeof(raw), &v, &err), -1);
	ember_error_free(&err);
}

static void the_header_bounds_credit_to_its_payload(void **state)
{
	uint8_t raw[PROTO_HEADER_SIZE];
	struct proto_header h = { .length = 5, .id = 1, .type = PROTO_CREDIT }, out;

	(void)state;
	proto_header_encode(raw, &h);
	assert_int_equal(proto_header_decode(raw, &out, NULL), -1);
	h.length = PROTO_CREDIT_PAYLOAD;
	proto_header_encode(raw, &h);
	assert_int_equal(proto_header_decode(raw, &out, NULL), 0);
	assert_string_equal(proto_type_name(PROTO_CREDIT), "CREDIT");
}

static void window_grants_when_half_is_free_and_never_beyond_it(void **state)
{
	struct proto_credit_window w;
	struct ember_error *err = NULL;

	(void)state;
	proto_credit_window_init(&w, PROTO_CREDIT_WINDOW);
	assert_int_equal(w.granted, PROTO_CREDIT_WINDOW);
	assert_int_equal(proto_credit_window_grant(&w), 0); /* all of it is in flight */
	assert_int_equal(proto_credit_window_received(&w, 200000, NULL), 0);
	assert_int_equal(proto_credit_window_grant(&w), 0); /* received but still buffered */
	proto_credit_window_consumed(&w, 100000);
	assert_int_equal(proto_credit_window_grant(&w), 0); /* less than half free */
	proto_credit_window_consumed(&w, 100000);
	assert_int_equal(proto_credit_window_grant(&w), 200000);
	assert_int_equal(proto_credit_window_grant(&w), 0);
	/* in flight + buffered never exceeds the window: the sender may use exactly its credit */
	assert_int_equal(proto_credit_window_received(&w, PROTO_CREDIT_WINDOW - 200000 + 200000,
						      NULL), 0);
	assert_int_equal(w.buffered, PROTO_CREDIT_WINDOW);
	assert_int_equal(proto_credit_window_received(&w, 1, &err), -1);
	assert_int_equal(err->kind, EMBER_E_PROTOCOL);
	ember_error_free(&err);
	proto_credit_window_consumed(&w, PROTO_CREDIT_WINDOW + 5); /* clamped */
	assert_int_equal(w.buffered, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(payload_roundtrips_and_refuses_zero_and_bad_sizes),
		cmocka_unit_test(the_header_bounds_credit_to_its_payload),
		cmocka_unit_test(window_grants_when_half_is_free_and_never_beyond_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
