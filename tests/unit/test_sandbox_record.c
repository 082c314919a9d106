/* Unit tests for the re-attach record (src/sandbox/record.c): labels, the sandbox's own
 * environment and the idle timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/record.h"

/* A record as a daemon before labels wrote it. */
#define OLD_RECORD "{\"version\":1,\"id\":\"sb_0123456789abcdef0123456789abcdef\"," \
	"\"language_pack\":\"shell\",\"vmm\":\"qemu\",\"vcpus\":1,\"memory_mib\":256," \
	"\"timeout_s\":600,\"overlay_mib\":64,\"created_wall_ns\":1,\"expires_wall_ns\":2," \
	"\"boot_ms\":3,\"pid\":1234,\"pid_start_ticks\":5"

static void fill(struct sandbox_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	snprintf(rec->id, sizeof(rec->id), "sb_0123456789abcdef0123456789abcdef");
	snprintf(rec->language_pack, sizeof(rec->language_pack), "shell");
	snprintf(rec->vmm, sizeof(rec->vmm), "qemu");
	rec->vcpus = 1;
	rec->memory_mib = 256;
	rec->timeout_s = 600;
	rec->overlay_mib = 64;
	rec->idle_timeout_s = 90;
	rec->created_wall_ns = 1;
	rec->expires_wall_ns = 2;
	rec->pid = 1234;
	rec->pid_start_ticks = 5;
}

static void labels_and_idle_timeout_round_trip_at_their_bounds(void **state)
{
	struct sandbox_record *rec = calloc(2, sizeof(*rec));
	char key[SANDBOX_LABEL_KEY_MAX + 1], value[SANDBOX_LABEL_VALUE_MAX + 1];
	size_t len;
	char *text;
	int i;

	(void)state;
	fill(&rec[0]);
	/* The largest labels there can be, every value byte escaped in JSON. */
	memset(value, '"', SANDBOX_LABEL_VALUE_MAX);
	value[SANDBOX_LABEL_VALUE_MAX] = '\0';
	for (i = 0; i < SANDBOX_LABELS_MAX; i++) {
		memset(key, 'k', SANDBOX_LABEL_KEY_MAX);
		snprintf(key, sizeof(key), "%02d", i);
		key[2] = 'k';
		key[SANDBOX_LABEL_KEY_MAX] = '\0';
		assert_int_equal(sandbox_labels_add(&rec[0].labels, key, value,
						    SANDBOX_LABEL_VALUE_MAX, NULL), 0);
	}
	/* and the largest environment, every value byte escaped as \u0001 */
	for (i = 0; i < SANDBOX_ENV_MAX; i++) {
		char name[8], big[SANDBOX_ENV_BYTES / SANDBOX_ENV_MAX];

		snprintf(name, sizeof(name), "V%02d", i);
		memset(big, 1, sizeof(big));
		assert_int_equal(sandbox_env_add(&rec[0].env, name, big, sizeof(big) - 5, NULL), 0);
	}
	assert_int_equal(rec[0].env.used, SANDBOX_ENV_BYTES);
	text = sandbox_record_encode(&rec[0], &len, NULL);
	assert_non_null(text);
	assert_true(len <= SANDBOX_RECORD_MAX);
	assert_int_equal(sandbox_record_parse(text, len, &rec[1], NULL), 0);
	assert_memory_equal(&rec[0], &rec[1], sizeof(rec[0]));
	free(text);
	free(rec);
}

static void a_record_without_labels_still_parses(void **state)
{
	struct sandbox_record *rec = malloc(sizeof(*rec));
	const char *old = OLD_RECORD "}";

	(void)state;
	assert_int_equal(sandbox_record_parse(old, strlen(old), rec, NULL), 0);
	assert_int_equal(rec->labels.count, 0);
	assert_int_equal(rec->idle_timeout_s, 0);
	assert_int_equal(rec->timeout_s, 600);
	free(rec);
}

static void a_paused_record_round_trips_without_a_pid(void **state)
{
	struct sandbox_record *rec = calloc(2, sizeof(*rec));
	static const char *const bad[] = {
		/* a pid with paused, paused without its fields, a foreign key */
		OLD_RECORD ",\"paused\":{\"lifetime_left_ms\":5,\"pack_digest\":\"a\","
			   "\"base_digest\":\"b\"}}",
		"{\"version\":1,\"id\":\"sb_x\",\"language_pack\":\"shell\",\"vmm\":\"qemu\","
		"\"vcpus\":1,\"memory_mib\":256,\"timeout_s\":600,\"overlay_mib\":64,"
		"\"created_wall_ns\":1,\"expires_wall_ns\":2,\"boot_ms\":3,"
		"\"paused\":{\"lifetime_left_ms\":5}}",
		"{\"version\":1,\"id\":\"sb_x\",\"language_pack\":\"shell\",\"vmm\":\"qemu\","
		"\"vcpus\":1,\"memory_mib\":256,\"timeout_s\":600,\"overlay_mib\":64,"
		"\"created_wall_ns\":1,\"expires_wall_ns\":2,\"boot_ms\":3,"
		"\"paused\":{\"lifetime_left_ms\":5,\"pack_digest\":\"a\",\"base_digest\":\"b\","
		"\"pid\":3}}",
	};
	size_t len, i;
	char *text;

	(void)state;
	fill(&rec[0]);
	rec[0].pid = 0;
	rec[0].pid_start_ticks = 0;
	rec[0].paused = true;
	rec[0].lifetime_left_ms = 594784;
	snprintf(rec[0].pack_digest, sizeof(rec[0].pack_digest), "%064d", 7);
	snprintf(rec[0].base_digest, sizeof(rec[0].base_digest), "%064d", 9);
	text = sandbox_record_encode(&rec[0], &len, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "\"pid\""));
	assert_int_equal(sandbox_record_parse(text, len, &rec[1], NULL), 0);
	assert_memory_equal(&rec[0], &rec[1], sizeof(rec[0]));
	free(text);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sandbox_record_parse(bad[i], strlen(bad[i]), &rec[1], NULL), -1);
	free(rec);
}

static void a_record_with_a_bad_label_is_refused(void **state)
{
	static const char *const bad[] = {
		OLD_RECORD ",\"labels\":{\"-k\":\"v\"}}",
		OLD_RECORD ",\"labels\":{\"k\":\"a\\nb\"}}",
		OLD_RECORD ",\"labels\":\"k=v\"}",
		OLD_RECORD ",\"idle_timeout_s\":-1}",
		OLD_RECORD ",\"idle_timeout_s\":2592001}",
		NULL,
	};
	struct sandbox_record *rec = malloc(sizeof(*rec));
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		if (sandbox_record_parse(bad[i], strlen(bad[i]), rec, NULL) != -1)
			fail_msg("accepted %s", bad[i]);
	}
	free(rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(labels_and_idle_timeout_round_trip_at_their_bounds),
		cmocka_unit_test(a_record_without_labels_still_parses),
		cmocka_unit_test(a_record_with_a_bad_label_is_refused),
		cmocka_unit_test(a_paused_record_round_trips_without_a_pid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
