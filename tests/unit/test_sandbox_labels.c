/* Unit tests for label validation and matching (src/sandbox/labels.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/labels.h"
#include "util/jsonutil.h"

static void keys_of_the_documented_shape_are_accepted(void **state)
{
	static const char *const good[] = { "a", "Z9", "team", "app.kubernetes.io/name", "a_b-c.d/e",
					    "0start", NULL };
	char longest[SANDBOX_LABEL_KEY_MAX + 1];
	size_t i;

	(void)state;
	for (i = 0; good[i] != NULL; i++) {
		if (sandbox_label_check_key(good[i], NULL) != 0)
			fail_msg("`%s` refused", good[i]);
	}
	memset(longest, 'k', SANDBOX_LABEL_KEY_MAX);
	longest[SANDBOX_LABEL_KEY_MAX] = '\0';
	assert_int_equal(sandbox_label_check_key(longest, NULL), 0);
}

static void bad_keys_are_refused_naming_the_key(void **state)
{
	static const struct {
		const char *key;
		const char *words;
	} cases[] = {
		{ "", "1 to 63 bytes" },
		{ "-lead", "start with a letter or digit" },
		{ ".lead", "start with a letter or digit" },
		{ "/lead", "start with a letter or digit" },
		{ "with space", "only letters, digits" },
		{ "k=v", "only letters, digits" },
		{ "caf\xc3\xa9", "only letters, digits" },
		{ "tab\there", "only letters, digits" },
	};
	char too_long[SANDBOX_LABEL_KEY_MAX + 2];
	struct ember_error *err = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(sandbox_label_check_key(cases[i].key, &err), -1);
		if (strstr(err->message, cases[i].words) == NULL)
			fail_msg("`%s`: %s", cases[i].key, err->message);
		ember_error_free(&err);
	}
	memset(too_long, 'k', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	assert_int_equal(sandbox_label_check_key(too_long, &err), -1);
	assert_non_null(strstr(err->message, "1 to 63 bytes"));
	ember_error_free(&err);
}

#define STRLEN ((size_t)-1)

static void values_are_bounded_utf8_text_without_controls(void **state)
{
	static const struct {
		const char *value;
		size_t len;
		int ok;
	} cases[] = {
		{ "", STRLEN, 0 },
		{ "plain words, punctuation: #1 / ok?", STRLEN, 0 },
		{ "J\xc3\xb6rg \xe2\x9c\x93", STRLEN, 0 }, /* Jörg ✓ */
		{ "a\nb", STRLEN, -1 },
		{ "a\x7f", STRLEN, -1 },                   /* DEL */
		{ "a\xc2\x85", STRLEN, -1 },               /* U+0085, a C1 control */
		{ "a\xc2\xa0", STRLEN, 0 },                /* U+00A0 is not one */
		{ "a\0b", 3, -1 },                         /* NUL inside */
		{ "\xff", STRLEN, -1 },                    /* not UTF-8 */
		{ "\xc0\xaf", STRLEN, -1 },                /* overlong */
	};
	char big[SANDBOX_LABEL_VALUE_MAX + 1];
	struct ember_error *err = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len == STRLEN ? strlen(cases[i].value) : cases[i].len;
		int got = sandbox_label_check_value("team", cases[i].value, len, &err);

		if (got != cases[i].ok)
			fail_msg("case %zu: got %d", i, got);
		if (got < 0) {
			assert_non_null(strstr(err->message, "label `team`"));
			ember_error_free(&err);
		}
	}
	memset(big, 'v', sizeof(big));
	assert_int_equal(sandbox_label_check_value("team", big, SANDBOX_LABEL_VALUE_MAX, NULL), 0);
	assert_int_equal(sandbox_label_check_value("team", big, sizeof(big), &err), -1);
	assert_non_null(strstr(err->message, "at most 256 bytes"));
	ember_error_free(&err);
}

static void labels_are_bounded_in_number_and_unique(void **state)
{
	struct sandbox_labels labels = { 0 };
	struct ember_error *err = NULL;
	char key[16];
	int i;

	(void)state;
	for (i = 0; i < SANDBOX_LABELS_MAX; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(sandbox_labels_add(&labels, key, "v", 1, NULL), 0);
	}
	assert_int_equal(sandbox_labels_add(&labels, "k0", "w", 1, &err), -1);
	assert_non_null(strstr(err->message, "given twice"));
	ember_error_free(&err);
	assert_int_equal(sandbox_labels_add(&labels, "one-more", "v", 1, &err), -1);
	assert_non_null(strstr(err->message, "at most 32 labels"));
	ember_error_free(&err);
	assert_int_equal(labels.count, SANDBOX_LABELS_MAX);
}

static void json_round_trip_and_refusals(void **state)
{
	static const char *const bad[] = {
		"{\"labels\":[]}", "{\"labels\":{\"k\":1}}", "{\"labels\":{\"k\":null}}",
		"{\"labels\":{\"-k\":\"v\"}}",
		"{\"labels\":{\"k\":\"a\\u001bb\"}}", NULL,
	};
	struct sandbox_labels labels;
	struct ember_error *err = NULL;
	json_t *root, *out;
	size_t i;
	const char *good = "{\"labels\":{\"team\":\"red\",\"e\":\"\"}}";

	(void)state;
	assert_int_equal(json_parse_object(good, strlen(good), &root, EMBER_E_INVALID, NULL), 0);
	assert_int_equal(sandbox_labels_from_json(root, "labels", &labels, NULL), 0);
	assert_int_equal(labels.count, 2);
	assert_string_equal(sandbox_labels_get(&labels, "team"), "red");
	assert_string_equal(sandbox_labels_get(&labels, "e"), "");
	assert_null(sandbox_labels_get(&labels, "other"));
	out = sandbox_labels_to_json(&labels);
	assert_true(json_equal(out, json_object_get(root, "labels")));
	json_decref(out);
	json_decref(root);
	for (i = 0; bad[i] != NULL; i++) {
		assert_int_equal(json_parse_object(bad[i], strlen(bad[i]), &root, EMBER_E_INVALID,
						   NULL), 0);
		if (sandbox_labels_from_json(root, "labels", &labels, &err) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(err->message, "labels"));
		ember_error_free(&err);
		json_decref(root);
	}
}

static void match_is_an_and_of_presence_and_equality(void **state)
{
	struct sandbox_labels labels = { 0 };
	const struct sandbox_label_term red[] = { { "team", "red" } };
	const struct sandbox_label_term red_web[] = { { "team", "red" }, { "tier", "web" } };
	const struct sandbox_label_term red_db[] = { { "team", "red" }, { "tier", "db" } };
	const struct sandbox_label_term has_tier[] = { { "tier", NULL } };
	const struct sandbox_label_term has_owner[] = { { "owner", NULL } };
	const struct sandbox_label_term empty_tier[] = { { "tier", "" } };

	(void)state;
	assert_int_equal(sandbox_labels_add(&labels, "team", "red", 3, NULL), 0);
	assert_int_equal(sandbox_labels_add(&labels, "tier", "web", 3, NULL), 0);
	assert_true(sandbox_labels_match(&labels, NULL, 0));
	assert_true(sandbox_labels_match(&labels, red, 1));
	assert_true(sandbox_labels_match(&labels, red_web, 2));
	assert_false(sandbox_labels_match(&labels, red_db, 2));
	assert_true(sandbox_labels_match(&labels, has_tier, 1));
	assert_false(sandbox_labels_match(&labels, has_owner, 1));
	assert_false(sandbox_labels_match(&labels, empty_tier, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys_of_the_documented_shape_are_accepted),
		cmocka_unit_test(bad_keys_are_refused_naming_the_key),
		cmocka_unit_test(values_are_bounded_utf8_text_without_controls),
		cmocka_unit_test(labels_are_bounded_in_number_and_unique),
		cmocka_unit_test(json_round_trip_and_refusals),
		cmocka_unit_test(match_is_an_and_of_presence_and_equality),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
