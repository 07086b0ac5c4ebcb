/*
 * hist.h - a latency histogram for the loop thread: fixed buckets, plain
 * integers (one thread writes and /metrics reads on the same thread), so
 * an observation is a few compares and three increments.
 *
 *     sl_lat_observe(&b->api_lat[api], sl_fs_mono_us() - t0);
 *
 * Buckets are upper bounds in microseconds (SL_LAT_BUCKETS_US, the last
 * is +Inf); metrics.c renders them as a Prometheus histogram in seconds.
 * @thread loop
 */
#ifndef SL_HIST_H
#define SL_HIST_H

#include <stdint.h>

#define SL_LAT_NB 14
#define SL_LAT_BUCKETS_US                                                      \
    {                                                                          \
        50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,      \
            250000, 1000000, -1                                                \
    }

typedef struct sl_lat_hist {
    uint64_t count[SL_LAT_NB];
    uint64_t sum_us;
    uint64_t n;
} sl_lat_hist;

static inline void sl_lat_observe(sl_lat_hist *h, int64_t us)
{
    static const int64_t bounds[SL_LAT_NB] = SL_LAT_BUCKETS_US;
    int i = 0;
    if (us < 0)
        us = 0;
    while (i < SL_LAT_NB - 1 && us > bounds[i])
        i++;
    h->count[i]++;
    h->sum_us += (uint64_t)us;
    h->n++;
}

#endif
