/* scrape.h - the body of GET /metrics: the manager's counters and histograms (sandbox/metrics.h)
 * and the gauges read now (sandboxes by state, pool and templates, host memory of the VMMs).
 * Called by routes.c; reads /proc for the VMMs' memory and never changes any state. */
#ifndef EMBER_API_SCRAPE_H
#define EMBER_API_SCRAPE_H

#include "api/server.h"
#include "util/buf.h"
#include "util/error.h"

/* The content type of the Prometheus text exposition format the body is in. */
#define API_SCRAPE_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the whole exposition to out. */
int api_scrape(struct api_context *ctx, struct buf *out, struct ember_error **err);

#endif
