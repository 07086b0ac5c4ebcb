/*
 * hwm_ckpt_bench.c - sluice-hwm-ckpt-bench DIR [PARTITIONS] [ROUNDS]: what
 * one write of the high-water mark checkpoint costs (storage/
 * hwm_checkpoint.c; the broker's round, broker/replica_hwm.c): PARTITIONS
 * entries (default 10000, topics of 100 partitions named t0000..) written
 * ROUNDS times (default 20) with the durable-file recipe to
 * DIR/replication-offset-checkpoint, every mark moved by one each round.
 * Prints the file size, the median and worst wall time of a write, and
 * the time to read the file back (what a start costs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/fsutil.h"
#include "storage/hwm_checkpoint.h"

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 10000;
    int rounds = argc > 3 ? atoi(argv[3]) : 20;
    char path[4096];
    sl_hwm_entry *e, *back = NULL;
    size_t nback = 0;
    long long *us, t0;
    FILE *f;
    long size = 0;
    char why[160] = "";

    if (argc < 2 || n == 0 || rounds < 1) {
        fprintf(stderr, "usage: %s DIR [PARTITIONS] [ROUNDS]\n", argv[0]);
        return 2;
    }
    snprintf(path, sizeof(path), "%s/%s", argv[1], SL_HWM_CKPT_FILE);
    e = calloc(n, sizeof(*e));
    us = calloc((size_t)rounds, sizeof(*us));
    if (!e || !us)
        return 1;
    for (size_t i = 0; i < n; i++) {
        char t[32];
        snprintf(t, sizeof(t), "t%04zu", i / 100);
        e[i].topic = strdup(t);
        e[i].partition = (int32_t)(i % 100);
        e[i].hwm = 1000000 + (int64_t)i;
    }
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++)
            e[i].hwm++;
        t0 = sl_fs_mono_us();
        if (sl_hwm_ckpt_write(path, e, n) != SL_OK) {
            fprintf(stderr, "write %s failed\n", path);
            return 1;
        }
        us[r] = sl_fs_mono_us() - t0;
    }
    t0 = sl_fs_mono_us();
    if (sl_hwm_ckpt_read(path, &back, &nback, why, sizeof(why)) != SL_OK ||
        nback != n) {
        fprintf(stderr, "read back: %s\n", why);
        return 1;
    }
    t0 = sl_fs_mono_us() - t0;
    if ((f = fopen(path, "rb"))) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    qsort(us, (size_t)rounds, sizeof(*us), cmp_ll);
    printf("%zu partitions: file %ld bytes; write (durable) median %.2f ms, "
           "worst %.2f ms over %d rounds; read back %.2f ms\n",
           n, size, us[rounds / 2] / 1000.0, us[rounds - 1] / 1000.0, rounds,
           t0 / 1000.0);
    sl_hwm_ckpt_free(back, nback);
    for (size_t i = 0; i < n; i++)
        free(e[i].topic);
    free(e);
    free(us);
    return 0;
}
