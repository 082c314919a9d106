/* metrics.h - the daemon's Prometheus metrics: counters and latency histograms behind one mutex,
 * and the text exposition format (version 0.0.4) of them and of gauges read at scrape time.
 * Called by the manager where it measures a duration or counts an outcome, and by GET /metrics.
 * Never does I/O and never calls out while holding its lock; a family is a fixed row of
 * metrics.c's table (its name, help and label names), only label values are dynamic. */
#ifndef EMBER_SANDBOX_METRICS_H
#define EMBER_SANDBOX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

/* Label values per series at most (a family names its labels in metrics.c). */
#define METRICS_LABELS_MAX 2
/* A label value longer than this is cut (pack names are 32 bytes, outcomes and modes shorter). */
#define METRICS_LABEL_VALUE_MAX 64
/* Series per family at most (beyond: observations are dropped and counted in
 * emberd_metrics_dropped_total). Packs x boot modes stays far below: 64 packs x 3 modes. */
#define METRICS_SERIES_MAX 256
/* Histogram buckets' upper bounds in seconds: 1 ms to 60 s, about 2.5x apart (plus +Inf). */
#define METRICS_BUCKETS 16

enum metrics_counter {
	METRICS_SANDBOXES_CREATED,     /* pack, boot_mode */
	METRICS_SANDBOXES_FAILED,      /* pack, boot_mode: creates that failed after admission */
	METRICS_EXECS,                 /* outcome */
	METRICS_GUEST_FAILURES,        /* kind */
	METRICS_COUNTERS,
};

enum metrics_histogram {
	METRICS_CREATE_SECONDS,        /* pack, boot_mode: POST /sandboxes that succeeded */
	METRICS_BOOT_SECONDS,          /* pack: a cold boot, VMM start to guest ready */
	METRICS_CLONE_SECONDS,         /* pack: a restore from a template (creates, pool fills) */
	METRICS_EXEC_SECONDS,          /* pack: an exec that reached the guest */
	METRICS_DELETE_SECONDS,        /* (none): DELETE /sandboxes/{id} */
	METRICS_HISTOGRAMS,
};

struct metrics;

int metrics_create(struct metrics **out, struct ember_error **err);
void metrics_free(struct metrics *reg);

/* Adds n to the counter's series named by labels (as many as the family has); n == 0 makes the
 * series exist at 0, so rate() sees its first increment. Any thread. */
void metrics_count(struct metrics *reg, enum metrics_counter c, const char *const *labels,
		   uint64_t n);
/* One observation, in milliseconds (how the daemon measures), exported in seconds. */
void metrics_observe_ms(struct metrics *reg, enum metrics_histogram h, const char *const *labels,
			int64_t ms);

/* Appends every counter and histogram family (HELP, TYPE, samples) to out. */
int metrics_write(struct metrics *reg, struct buf *out, struct ember_error **err);

/* The exposition writer, for gauges the caller reads at scrape time: a family's HELP and TYPE
 * lines, then its samples. Label values are escaped (\\, \", \n); so is help (\\, \n). */
struct metrics_label {
	const char *name;
	const char *value;
};

int metrics_write_family(struct buf *out, const char *name, const char *type, const char *help,
			 struct ember_error **err);
int metrics_write_sample(struct buf *out, const char *name, const struct metrics_label *labels,
			 size_t nlabels, double value, struct ember_error **err);

/* The bucket bounds (METRICS_BUCKETS of them, ascending), for tests and docs. */
const double *metrics_bucket_bounds(void);

#endif
