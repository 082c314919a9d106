/* scrape.c - GET /metrics: gauges read at scrape time, then the manager's counters and
 * histograms. A scrape costs a stats snapshot, a table copy and one /proc/<pid>/smaps_rollup
 * read per VMM (the kernel walks that VM's page tables: about a millisecond per GiB mapped),
 * which is fine at a scrape interval of seconds. */
#include "api/scrape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/manager.h"
#include "sandbox/metrics.h"
#include "util/cleanup.h"
#include "util/fdio.h"

/* smaps_rollup is a few hundred bytes. */
#define SMAPS_ROLLUP_MAX 4096

struct vmm_memory {
	unsigned processes;   /* VMMs whose memory was read */
	uint64_t rss_bytes;
	uint64_t pss_bytes;
};

/* The kB value of `field:` in a smaps_rollup text; 0 when absent. */
static uint64_t rollup_kib(const char *text, const char *field)
{
	const char *p = text;
	size_t n = strlen(field);

	while ((p = strstr(p, field)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ':')
			return strtoull(p + n + 1, NULL, 10);
		p += n;
	}
	return 0;
}

/* Adds one VMM's resident and proportional memory; a process that exited meanwhile (or whose
 * file cannot be read) is skipped. */
static void add_vmm_memory(pid_t pid, struct vmm_memory *mem)
{
	_cleanup_free_ char *text = NULL;
	struct ember_error *err = NULL;
	char path[64];
	size_t len;

	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if (file_read_all(path, SMAPS_ROLLUP_MAX, &text, &len, &err) < 0) {
		ember_error_free(&err);
		return;
	}
	mem->processes++;
	mem->rss_bytes += rollup_kib(text, "Rss") * 1024;
	mem->pss_bytes += rollup_kib(text, "Pss") * 1024;
}

struct gauge {
	const char *name;
	const char *help;
};

/* One family of one sample each, labelled by label (NULL: unlabelled, one value). */
static int write_gauge(struct buf *out, const struct gauge *g, const char *label,
		       const char *const *values, const double *v, size_t n,
		       struct ember_error **err)
{
	size_t i;

	if (metrics_write_family(out, g->name, "gauge", g->help, err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct metrics_label l = { label, label != NULL ? values[i] : NULL };

		if (metrics_write_sample(out, g->name, &l, label != NULL ? 1 : 0, v[i], err) < 0)
			return -1;
	}
	return 0;
}

static int write_sandboxes(struct buf *out, const struct manager_stats *st,
			   struct ember_error **err)
{
	static const struct gauge g = { "emberd_sandboxes", "Sandboxes in the table, by state." };
	static const char *const states[] = { "booting", "ready", "failed", "destroying", "paused" };
	double v[] = { st->booting, st->ready, st->failed, st->destroying, st->paused };

	return write_gauge(out, &g, "state", states, v, ARRAY_SIZE(v), err);
}

static int write_templates(struct buf *out, const struct manager_stats *st,
			   struct ember_error **err)
{
	static const struct gauge g = { "emberd_templates",
					"Snapshot templates, by state (0 when snapshots are off)." };
	static const char *const states[] = { "ready", "building", "failed" };
	double v[] = { st->templates_ready, st->templates_building, st->templates_failed };

	return write_gauge(out, &g, "state", states, v, ARRAY_SIZE(v), err);
}

/* Ready clones and the target, per pack of the catalog the pool counts against. */
static int write_pool(struct buf *out, const struct manager_stats *st, struct ember_error **err)
{
	static const struct gauge ready = { "emberd_pool_ready",
					    "Warm-pool clones ready to hand out, by pack." };
	static const struct gauge target = { "emberd_pool_target",
					     "Warm-pool clones kept per pack (--pool-size; 0: no "
					     "pool)." };
	const struct catalog *c = st->pool_catalog;
	const char *names[CATALOG_PACKS_MAX];
	double r[CATALOG_PACKS_MAX], t[CATALOG_PACKS_MAX];
	size_t i, n = c != NULL ? c->count : 0;

	for (i = 0; i < n; i++) {
		names[i] = c->packs[i].name;
		r[i] = st->pool_ready_by_pack[i];
		t[i] = st->pool_size;
	}
	if (write_gauge(out, &ready, "pack", names, r, n, err) < 0)
		return -1;
	return write_gauge(out, &target, "pack", names, t, n, err);
}

/* The memory of every VMM, by owner: sandboxes (past their boot) and pooled clones (template
 * builds are not counted). */
static int write_vmm_memory(struct buf *out, struct manager *m, struct ember_error **err)
{
	static const struct gauge procs = { "emberd_vmm_processes",
					    "VMM processes whose memory was read, by owner "
					    "(sandbox, pool)." };
	static const struct gauge rss = { "emberd_vmm_resident_memory_bytes",
					  "Resident memory (RSS) of the VMM processes, summed by "
					  "owner; pages shared with a template count once per "
					  "clone." };
	static const struct gauge pss = { "emberd_vmm_proportional_memory_bytes",
					  "Proportional set size (PSS) of the VMM processes, summed "
					  "by owner: shared pages split among sharers." };
	static const char *const owners[] = { "sandbox", "pool" };
	_cleanup_free_ struct manager_vmm *vmms = NULL;
	struct vmm_memory mem[2] = { { 0 }, { 0 } };
	double v[2];
	size_t i, count = 0;

	if (manager_vmms(m, &vmms, &count, err) < 0)
		return -1;
	for (i = 0; i < count; i++)
		add_vmm_memory(vmms[i].pid, &mem[vmms[i].pooled ? 1 : 0]);
	for (i = 0; i < 2; i++)
		v[i] = mem[i].processes;
	if (write_gauge(out, &procs, "owner", owners, v, 2, err) < 0)
		return -1;
	for (i = 0; i < 2; i++)
		v[i] = (double)mem[i].rss_bytes;
	if (write_gauge(out, &rss, "owner", owners, v, 2, err) < 0)
		return -1;
	for (i = 0; i < 2; i++)
		v[i] = (double)mem[i].pss_bytes;
	return write_gauge(out, &pss, "owner", owners, v, 2, err);
}

int api_scrape(struct api_context *ctx, struct buf *out, struct ember_error **err)
{
	struct manager_stats st;

	manager_stats(ctx->manager, &st);
	if (write_sandboxes(out, &st, err) < 0 || write_pool(out, &st, err) < 0 ||
	    write_templates(out, &st, err) < 0 || write_vmm_memory(out, ctx->manager, err) < 0)
		return ember_error_wrap(err, "metrics");
	return metrics_write(manager_metrics(ctx->manager), out, err);
}
