/* metrics.c - counters and histograms behind one mutex, and their text exposition.
 * A series is found by a linear walk of its family (tens of series: packs x boot modes), under
 * the lock; an observation costs that walk and a bucket search, far below the millisecond-scale
 * operations it measures, so one mutex is simpler than atomics and still cheap. */
#include "sandbox/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

/* 1 ms .. 60 s: an exec of `print(1)` takes a few ms, a clone tens, a cold boot under TCG
 * seconds, a stuck boot up to --boot-timeout-ms (60 s by default). */
static const double bucket_bounds[METRICS_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60,
};

struct family_def {
	const char *name;
	const char *help;
	const char *labels[METRICS_LABELS_MAX];
	size_t nlabels;
};

static const struct family_def counter_defs[METRICS_COUNTERS] = {
	[METRICS_SANDBOXES_CREATED] = { "emberd_sandboxes_created_total",
					"Sandboxes created and ready, by pack and how they started "
					"(cold boot, clone of a template, or from the warm pool).",
					{ "pack", "boot_mode" }, 2 },
	[METRICS_SANDBOXES_FAILED] = { "emberd_sandboxes_failed_total",
				       "Sandbox creates that failed after admission (the VM did "
				       "not boot or its guest did not answer), by pack and the "
				       "boot mode tried last.",
				       { "pack", "boot_mode" }, 2 },
	[METRICS_EXECS] = { "emberd_execs_total",
			    "Execs that reached the guest, by outcome: ok (exit 0), "
			    "nonzero_exit, signal, timeout, oom, or error (no exit report).",
			    { "outcome" }, 1 },
	[METRICS_GUEST_FAILURES] = { "emberd_guest_failures_total",
				     "Guest or VMM failures, by kind: vm_exited, kernel_panic, "
				     "channel_broken (a sandbox became failed), boot_failed, "
				     "boot_timeout, clone_failed.",
				     { "kind" }, 1 },
};

static const struct family_def histogram_defs[METRICS_HISTOGRAMS] = {
	[METRICS_CREATE_SECONDS] = { "emberd_sandbox_create_seconds",
				     "Latency of successful sandbox creates, by pack and boot mode.",
				     { "pack", "boot_mode" }, 2 },
	[METRICS_BOOT_SECONDS] = { "emberd_sandbox_boot_seconds",
				   "Cold boots: from starting the VMM to the guest agent's ready.",
				   { "pack" }, 1 },
	[METRICS_CLONE_SECONDS] = { "emberd_sandbox_clone_seconds",
				    "Clones restored from a template (creates and pool fills): "
				    "from starting the VMM to the guest agent's ready.",
				    { "pack" }, 1 },
	[METRICS_EXEC_SECONDS] = { "emberd_exec_seconds",
				   "Latency of execs that reached the guest, as the daemon saw it.",
				   { "pack" }, 1 },
	[METRICS_DELETE_SECONDS] = { "emberd_sandbox_delete_seconds",
				     "Latency of deletes that destroyed a sandbox (DELETE "
				     "/sandboxes/{id}, MCP tools and sessions ending).",
				     { NULL }, 0 },
};

struct series {
	char labels[METRICS_LABELS_MAX][METRICS_LABEL_VALUE_MAX + 1];
	uint64_t count;                    /* a counter's value, or a histogram's observations */
	uint64_t buckets[METRICS_BUCKETS]; /* histograms: per bucket, not cumulative */
	int64_t sum_ms;
};

struct family {
	struct series *series;
	size_t count;
	size_t cap;
};

struct metrics {
	pthread_mutex_t lock;
	struct family counters[METRICS_COUNTERS];
	struct family histograms[METRICS_HISTOGRAMS];
	uint64_t dropped; /* observations without room for their series (METRICS_SERIES_MAX) */
};

const double *metrics_bucket_bounds(void)
{
	return bucket_bounds;
}

int metrics_create(struct metrics **out, struct ember_error **err)
{
	struct metrics *reg = calloc(1, sizeof(*reg));

	if (reg == NULL)
		return ember_error_oom(err);
	pthread_mutex_init(&reg->lock, NULL);
	*out = reg;
	return 0;
}

void metrics_free(struct metrics *reg)
{
	size_t i;

	if (reg == NULL)
		return;
	for (i = 0; i < METRICS_COUNTERS; i++)
		free(reg->counters[i].series);
	for (i = 0; i < METRICS_HISTOGRAMS; i++)
		free(reg->histograms[i].series);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

/* The series named by labels (cut to METRICS_LABEL_VALUE_MAX), made when new; NULL when the
 * family is full or memory is out. Lock held. */
static struct series *series_locked(struct metrics *reg, struct family *fam,
				    const struct family_def *def, const char *const *labels)
{
	char key[METRICS_LABELS_MAX][METRICS_LABEL_VALUE_MAX + 1] = { { 0 } };
	struct series *s;
	size_t i, j;

	for (j = 0; j < def->nlabels; j++)
		snprintf(key[j], sizeof(key[j]), "%s", labels != NULL && labels[j] ? labels[j] : "");
	for (i = 0; i < fam->count; i++) {
		for (j = 0; j < def->nlabels && strcmp(fam->series[i].labels[j], key[j]) == 0; j++)
			;
		if (j == def->nlabels)
			return &fam->series[i];
	}
	if (fam->count == fam->cap) {
		size_t cap = fam->cap == 0 ? 8 : fam->cap * 2;

		if (cap > METRICS_SERIES_MAX)
			cap = METRICS_SERIES_MAX;
		s = cap > fam->cap ? realloc(fam->series, cap * sizeof(*s)) : NULL;
		if (s == NULL) {
			reg->dropped++;
			return NULL;
		}
		fam->series = s;
		fam->cap = cap;
	}
	s = &fam->series[fam->count++];
	memset(s, 0, sizeof(*s));
	memcpy(s->labels, key, sizeof(key));
	return s;
}

void metrics_count(struct metrics *reg, enum metrics_counter c, const char *const *labels,
		   uint64_t n)
{
	struct series *s;

	if (reg == NULL)
		return;
	pthread_mutex_lock(&reg->lock);
	s = series_locked(reg, &reg->counters[c], &counter_defs[c], labels);
	if (s != NULL)
		s->count += n;
	pthread_mutex_unlock(&reg->lock);
}

void metrics_observe_ms(struct metrics *reg, enum metrics_histogram h, const char *const *labels,
			int64_t ms)
{
	struct series *s;
	double seconds;
	size_t b;

	if (reg == NULL)
		return;
	if (ms < 0)
		ms = 0;
	seconds = (double)ms / 1000.0;
	for (b = 0; b < METRICS_BUCKETS && seconds > bucket_bounds[b]; b++)
		;
	pthread_mutex_lock(&reg->lock);
	s = series_locked(reg, &reg->histograms[h], &histogram_defs[h], labels);
	if (s != NULL) {
		s->count++;
		s->sum_ms += ms;
		if (b < METRICS_BUCKETS)
			s->buckets[b]++;
	}
	pthread_mutex_unlock(&reg->lock);
}

/* ---- the text format ------------------------------------------------------------------------ */

/* Appends to a buffer and remembers the first failure, so a writer checks once at its end. */
struct writer {
	struct buf *out;
	bool failed;
};

static void put(struct writer *w, const char *s, size_t n)
{
	if (!w->failed && buf_append(w->out, s, n) < 0)
		w->failed = true;
}

static void puts_(struct writer *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Label values escape \, " and newline; HELP text escapes \ and newline (format 0.0.4). */
static void put_escaped(struct writer *w, const char *s, bool quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
				  : *s == '"' && quote ? "\\\"" : NULL;

		if (esc == NULL)
			continue;
		put(w, run, (size_t)(s - run));
		puts_(w, esc);
		run = s + 1;
	}
	put(w, run, (size_t)(s - run));
}

/* Integers as integers, the rest with enough digits to read back; Inf and NaN as spelled by
 * the format. */
static void put_value(struct writer *w, double v)
{
	char text[64];

	if (isnan(v))
		snprintf(text, sizeof(text), "NaN");
	else if (isinf(v))
		snprintf(text, sizeof(text), "%s", v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(text, sizeof(text), "%.15g", v);
	puts_(w, text);
}

static void family_header(struct writer *w, const char *name, const char *type, const char *help)
{
	puts_(w, "# HELP ");
	puts_(w, name);
	puts_(w, " ");
	put_escaped(w, help, false);
	puts_(w, "\n# TYPE ");
	puts_(w, name);
	puts_(w, " ");
	puts_(w, type);
	puts_(w, "\n");
}

/* name{labels} value; name is the family's plus suffix ("_bucket", "" ...). */
static void sample(struct writer *w, const char *name, const char *suffix,
		   const struct metrics_label *labels, size_t nlabels, double value)
{
	size_t i;

	puts_(w, name);
	puts_(w, suffix);
	for (i = 0; i < nlabels; i++) {
		puts_(w, i == 0 ? "{" : ",");
		puts_(w, labels[i].name);
		puts_(w, "=\"");
		put_escaped(w, labels[i].value, true);
		puts_(w, "\"");
	}
	puts_(w, nlabels > 0 ? "} " : " ");
	put_value(w, value);
	puts_(w, "\n");
}

static int finish(struct writer *w, struct ember_error **err)
{
	if (w->failed)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "write metrics: out of memory");
	return 0;
}

int metrics_write_family(struct buf *out, const char *name, const char *type, const char *help,
			 struct ember_error **err)
{
	struct writer w = { .out = out };

	family_header(&w, name, type, help);
	return finish(&w, err);
}

int metrics_write_sample(struct buf *out, const char *name, const struct metrics_label *labels,
			 size_t nlabels, double value, struct ember_error **err)
{
	struct writer w = { .out = out };

	sample(&w, name, "", labels, nlabels, value);
	return finish(&w, err);
}

/* A series' labels as name/value pairs, with room for one more (a histogram's le). */
static size_t series_labels(const struct family_def *def, const struct series *s,
			    struct metrics_label *out)
{
	size_t j;

	for (j = 0; j < def->nlabels; j++) {
		out[j].name = def->labels[j];
		out[j].value = s->labels[j];
	}
	return def->nlabels;
}

static void write_histogram(struct writer *w, const struct family_def *def,
			    const struct series *s)
{
	struct metrics_label labels[METRICS_LABELS_MAX + 1];
	size_t n = series_labels(def, s, labels);
	uint64_t cumulative = 0;
	char le[32];
	size_t b;

	labels[n].name = "le";
	labels[n].value = le;
	for (b = 0; b < METRICS_BUCKETS; b++) {
		cumulative += s->buckets[b];
		snprintf(le, sizeof(le), "%g", bucket_bounds[b]);
		sample(w, def->name, "_bucket", labels, n + 1, (double)cumulative);
	}
	snprintf(le, sizeof(le), "+Inf");
	sample(w, def->name, "_bucket", labels, n + 1, (double)s->count);
	sample(w, def->name, "_sum", labels, n, (double)s->sum_ms / 1000.0);
	sample(w, def->name, "_count", labels, n, (double)s->count);
}

/* Formats under the lock: memory only, no I/O (the caller sends the buffer afterwards). */
int metrics_write(struct metrics *reg, struct buf *out, struct ember_error **err)
{
	struct metrics_label labels[METRICS_LABELS_MAX];
	struct writer w = { .out = out };
	size_t i, k;

	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < METRICS_COUNTERS; i++) {
		const struct family_def *def = &counter_defs[i];
		const struct family *fam = &reg->counters[i];

		family_header(&w, def->name, "counter", def->help);
		for (k = 0; k < fam->count; k++)
			sample(&w, def->name, "", labels, series_labels(def, &fam->series[k], labels),
			       (double)fam->series[k].count);
	}
	for (i = 0; i < METRICS_HISTOGRAMS; i++) {
		const struct family_def *def = &histogram_defs[i];
		const struct family *fam = &reg->histograms[i];

		family_header(&w, def->name, "histogram", def->help);
		for (k = 0; k < fam->count; k++)
			write_histogram(&w, def, &fam->series[k]);
	}
	family_header(&w, "emberd_metrics_dropped_total", "counter",
		      "Observations dropped: their family already had its maximum of series.");
	sample(&w, "emberd_metrics_dropped_total", "", NULL, 0, (double)reg->dropped);
	pthread_mutex_unlock(&reg->lock);
	return finish(&w, err);
}
