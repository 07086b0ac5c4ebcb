/*
 * metrics.h - the Prometheus text exposition served at GET /metrics.
 *
 * Everything is gathered when scraped: gauges are read from the partition
 * logs and the groups; counters are kept by their owners (per partition,
 * per API, in the groups, in the flusher) as plain or atomic integers
 * that the hot path bumps anyway, so a scrape adds no work to produce or
 * consume. docs/http-api.md lists the families.
 * @thread loop
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <event2/buffer.h>

#include "broker/ops.h"

/* Append the whole exposition (text format 0.0.4) to out. */
void sl_metrics_render(sl_broker *b, struct evbuffer *out);

#endif
