/* Unit tests for the metrics registry and its text exposition (src/sandbox/metrics.c):
 * counters by label, histogram buckets, escaping, the series cap, and counting from threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sandbox/metrics.h"

/* The whole exposition as a NUL-terminated string (free it). */
static char *scrape(struct metrics *reg)
{
	struct ember_error *err = NULL;
	struct buf out = { 0 };

	assert_int_equal(metrics_write(reg, &out, &err), 0);
	assert_int_equal(buf_terminate(&out), 0);
	return (char *)out.data;
}

static void assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("no line `%s` in:\n%s", line, text);
}

static void counters_are_kept_per_label_set_and_seeded_at_zero(void **state)
{
	const char *ok[] = { "ok" }, *bad[] = { "nonzero_exit" }, *seed[] = { "oom" };
	const char *py_cold[] = { "python", "cold" };
	struct metrics *reg;
	char *text;

	(void)state;
	assert_int_equal(metrics_create(&reg, NULL), 0);
	metrics_count(reg, METRICS_EXECS, ok, 1);
	metrics_count(reg, METRICS_EXECS, ok, 2);
	metrics_count(reg, METRICS_EXECS, bad, 1);
	metrics_count(reg, METRICS_EXECS, seed, 0);
	metrics_count(reg, METRICS_SANDBOXES_CREATED, py_cold, 1);
	text = scrape(reg);
	assert_line(text, "# TYPE emberd_execs_total counter");
	assert_line(text, "emberd_execs_total{outcome=\"ok\"} 3");
	assert_line(text, "emberd_execs_total{outcome=\"nonzero_exit\"} 1");
	assert_line(text, "emberd_execs_total{outcome=\"oom\"} 0");
	assert_line(text, "emberd_sandboxes_created_total{pack=\"python\",boot_mode=\"cold\"} 1");
	assert_line(text, "# TYPE emberd_sandbox_create_seconds histogram");
	assert_line(text, "emberd_metrics_dropped_total 0");
	free(text);
	metrics_free(reg);
}

static void a_histogram_has_cumulative_buckets_sum_and_count(void **state)
{
	const char *pack[] = { "node" };
	struct metrics *reg;
	char *text;

	(void)state;
	assert_int_equal(metrics_create(&reg, NULL), 0);
	metrics_observe_ms(reg, METRICS_EXEC_SECONDS, pack, 1);     /* le 0.001: bounds are inclusive */
	metrics_observe_ms(reg, METRICS_EXEC_SECONDS, pack, 7);     /* le 0.01 */
	metrics_observe_ms(reg, METRICS_EXEC_SECONDS, pack, 1500);  /* le 2.5 */
	metrics_observe_ms(reg, METRICS_EXEC_SECONDS, pack, 90000); /* only +Inf */
	metrics_observe_ms(reg, METRICS_DELETE_SECONDS, NULL, 250);
	text = scrape(reg);
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"0.001\"} 1");
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"0.005\"} 1");
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"0.01\"} 2");
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"1\"} 2");
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"2.5\"} 3");
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"60\"} 3");
	assert_line(text, "emberd_exec_seconds_bucket{pack=\"node\",le=\"+Inf\"} 4");
	assert_line(text, "emberd_exec_seconds_sum{pack=\"node\"} 91.508");
	assert_line(text, "emberd_exec_seconds_count{pack=\"node\"} 4");
	/* A family without labels has only le on its buckets. */
	assert_line(text, "emberd_sandbox_delete_seconds_bucket{le=\"0.25\"} 1");
	assert_line(text, "emberd_sandbox_delete_seconds_bucket{le=\"0.1\"} 0");
	assert_line(text, "emberd_sandbox_delete_seconds_sum 0.25");
	assert_line(text, "emberd_sandbox_delete_seconds_count 1");
	free(text);
	metrics_free(reg);
}

static void the_buckets_run_from_a_millisecond_to_a_minute(void **state)
{
	const double *b = metrics_bucket_bounds();
	size_t i;

	(void)state;
	assert_true(b[0] == 0.001);
	assert_true(b[METRICS_BUCKETS - 1] == 60);
	for (i = 1; i < METRICS_BUCKETS; i++)
		assert_true(b[i] > b[i - 1]);
}

static void label_values_and_help_are_escaped(void **state)
{
	const char *odd[] = { "a\"b\\c\nd", "x" };
	struct metrics_label l = { "pack", "q\"\\\n" };
	struct metrics *reg;
	struct buf out = { 0 };
	char *text;

	(void)state;
	assert_int_equal(metrics_create(&reg, NULL), 0);
	metrics_count(reg, METRICS_SANDBOXES_FAILED, odd, 1);
	text = scrape(reg);
	assert_line(text, "emberd_sandboxes_failed_total{pack=\"a\\\"b\\\\c\\nd\",boot_mode=\"x\"} 1");
	free(text);
	metrics_free(reg);

	assert_int_equal(metrics_write_family(&out, "emberd_x", "gauge", "one\\two\nthree \"q\"",
					      NULL), 0);
	assert_int_equal(metrics_write_sample(&out, "emberd_x", &l, 1, 2.5, NULL), 0);
	assert_int_equal(metrics_write_sample(&out, "emberd_x", NULL, 0, 1e12, NULL), 0);
	assert_int_equal(buf_terminate(&out), 0);
	/* HELP escapes backslash and newline only; quotes stay. */
	assert_string_equal((char *)out.data, "# HELP emberd_x one\\\\two\\nthree \"q\"\n"
					      "# TYPE emberd_x gauge\n"
					      "emberd_x{pack=\"q\\\"\\\\\\n\"} 2.5\n"
					      "emberd_x 1000000000000\n");
	buf_release(&out);
}

static void a_long_label_value_is_cut_and_still_one_series(void **state)
{
	char longer[METRICS_LABEL_VALUE_MAX * 2];
	const char *v[] = { longer };
	struct metrics *reg;
	char *text, *line;

	(void)state;
	memset(longer, 'k', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(metrics_create(&reg, NULL), 0);
	metrics_count(reg, METRICS_GUEST_FAILURES, v, 1);
	metrics_count(reg, METRICS_GUEST_FAILURES, v, 1);
	text = scrape(reg);
	line = strstr(text, "emberd_guest_failures_total{kind=\"");
	assert_non_null(line);
	line += strlen("emberd_guest_failures_total{kind=\"");
	assert_int_equal(strspn(line, "k"), METRICS_LABEL_VALUE_MAX);
	assert_true(strncmp(line + METRICS_LABEL_VALUE_MAX, "\"} 2\n", 5) == 0);
	free(text);
	metrics_free(reg);
}

static void series_beyond_the_cap_are_dropped_and_counted(void **state)
{
	struct metrics *reg;
	char name[32];
	const char *v[] = { name };
	char *text;
	int i;

	(void)state;
	assert_int_equal(metrics_create(&reg, NULL), 0);
	for (i = 0; i < METRICS_SERIES_MAX + 3; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		metrics_count(reg, METRICS_GUEST_FAILURES, v, 1);
	}
	text = scrape(reg);
	assert_line(text, "emberd_guest_failures_total{kind=\"k0\"} 1");
	assert_null(strstr(text, "kind=\"k256\""));
	assert_line(text, "emberd_metrics_dropped_total 3");
	free(text);
	metrics_free(reg);
}

#define THREADS 4
#define PER_THREAD 2000

static void *count_many(void *arg)
{
	struct metrics *reg = arg;
	const char *ok[] = { "ok" }, *pack[] = { "python" };
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		metrics_count(reg, METRICS_EXECS, ok, 1);
		metrics_observe_ms(reg, METRICS_EXEC_SECONDS, pack, i % 100);
	}
	return NULL;
}

static void counting_from_many_threads_loses_nothing(void **state)
{
	pthread_t t[THREADS];
	struct metrics *reg;
	char *text, line[128];
	int i;

	(void)state;
	assert_int_equal(metrics_create(&reg, NULL), 0);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, count_many, reg), 0);
	for (i = 0; i < THREADS; i++) {
		/* A scrape while others count: it sees a consistent snapshot of each series. */
		free(scrape(reg));
		pthread_join(t[i], NULL);
	}
	text = scrape(reg);
	snprintf(line, sizeof(line), "emberd_execs_total{outcome=\"ok\"} %d", THREADS * PER_THREAD);
	assert_line(text, line);
	snprintf(line, sizeof(line), "emberd_exec_seconds_count{pack=\"python\"} %d",
		 THREADS * PER_THREAD);
	assert_line(text, line);
	free(text);
	metrics_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counters_are_kept_per_label_set_and_seeded_at_zero),
		cmocka_unit_test(a_histogram_has_cumulative_buckets_sum_and_count),
		cmocka_unit_test(the_buckets_run_from_a_millisecond_to_a_minute),
		cmocka_unit_test(label_values_and_help_are_escaped),
		cmocka_unit_test(a_long_label_value_is_cut_and_still_one_series),
		cmocka_unit_test(series_beyond_the_cap_are_dropped_and_counted),
		cmocka_unit_test(counting_from_many_threads_loses_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
