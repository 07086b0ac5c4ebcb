/*
 * bench/bench_time.h - the small helpers the stand-alone durability tools
 * (sluice-fsync-one, sluice-durable-call) share: the monotonic clock in
 * microseconds, a timeval in microseconds, a double comparator for qsort
 * and perror-and-exit.
 */
#ifndef SLUICE_BENCH_TIME_H
#define SLUICE_BENCH_TIME_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline void die(const char *what)
{
    perror(what);
    exit(1);
}

static inline double tv_us(struct timeval t)
{
    return (double)t.tv_sec * 1e6 + (double)t.tv_usec;
}

static inline int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
