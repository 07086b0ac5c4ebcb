/*
 * topic_summary.c - the partition summaries a clean stop writes and the
 * next start reads (the essay below), for topic.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/topic.h"
#include "broker/topic_int.h"
#include "protocol/log.h"
#include "storage/fsutil.h"

/* ---- PARTITION SUMMARIES ----------------------------------------------
 *
 * A start used to open every partition (list its directory, open its
 * segments, load its indexes, scan its tail): 66-69 s and 1 GiB of RSS
 * for 100,000 partitions. Now a clean stop writes one line per partition
 * to DATA/partitions.summary (offsets, size, what retention looks at:
 * sl_part_summary), durably, before the clean-stop marker; the marker
 * carries the file's token. The next start, when it finds the marker and
 * a summary file with the same token, opens each partition from its line
 * (sl_part_open_lazy: no directory access) and the partition loads its
 * segments at its first real use. A start after a crash trusts it for
 * the partitions that no run since the clean stop changed: every run
 * lists the ones it changes in DATA/partitions.touched under the
 * summary's token (storage/partition_startup.c), so the file is kept after a
 * start. Any other start (no summary, another token, a partition missing
 * from it) opens partitions as always. Partitions of a new topic (or
 * added to one) are opened lazily too: their directory is new and empty.
 *
 * File: "sluice-partitions 1 TOKEN\n", then per partition
 * "TOPIC PART START END BYTES NSEGS FIRST_MAX_TS FIRST_BYTES SECOND_BASE\n".
 */

static int psum_cmp(const void *a, const void *b)
{
    const psum *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->part > y->part) - (x->part < y->part);
}

/* Read DATA/partitions.summary if its token is `token`; ts->sums. The
 * buffer holding the names is returned (freed after loading). */
char *sl_topics_summaries_read(sl_topics *ts, const char *token)
{
    char path[4096];
    char *buf = NULL, *q, *nl;
    struct stat st;
    size_t cap = 0, n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", ts->dir, SL_TOPICS_SUMMARY_FILE);
    f = fopen(path, "re");
    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 ||
        !(buf = malloc((size_t)st.st_size + 1)) ||
        fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[st.st_size] = 0;
    nl = strchr(buf, '\n');
    if (!nl || !token[0] || strncmp(buf, "sluice-partitions 1 ", 20) != 0 ||
        (size_t)(nl - buf - 20) != strlen(token) ||
        strncmp(buf + 20, token, strlen(token)) != 0) {
        sl_log(SL_WARN, "topic",
               "%s is not from the last clean stop: partitions are opened "
               "and recovered at start",
               path);
        free(buf);
        return NULL;
    }
    for (q = nl + 1; *q; q = nl + 1) {
        psum e;
        char *tok[9];
        int k = 0;
        nl = strchr(q, '\n');
        if (!nl)
            break; /* (a last line without its newline: not used) */
        *nl = 0;
        for (char *sp = q; k < 9; k++) {
            tok[k] = sp;
            sp = strchr(sp, ' ');
            if (!sp)
                break;
            *sp++ = 0;
        }
        if (k != 8)
            continue; /* not 9 fields */
        e.topic = tok[0];
        e.part = (int32_t)strtol(tok[1], NULL, 10);
        e.sum.start = strtoll(tok[2], NULL, 10);
        e.sum.end = strtoll(tok[3], NULL, 10);
        e.sum.bytes = strtoull(tok[4], NULL, 10);
        e.sum.nsegs = (uint32_t)strtoul(tok[5], NULL, 10);
        e.sum.first_max_ts = strtoll(tok[6], NULL, 10);
        e.sum.first_bytes = strtoull(tok[7], NULL, 10);
        e.sum.second_base = strtoll(tok[8], NULL, 10);
        if (e.sum.start < 0 || e.sum.end < e.sum.start ||
            (e.sum.nsegs == 0 && e.sum.end != 0))
            continue; /* (nsegs 0: a new partition, never written) */
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 1024;
            psum *nv = realloc(ts->sums, nc * sizeof(*nv));
            if (!nv)
                break;
            ts->sums = nv;
            cap = nc;
        }
        ts->sums[n++] = e;
    }
    if (n > 1)
        qsort(ts->sums, n, sizeof(*ts->sums), psum_cmp);
    ts->nsums = n;
    return buf;
}

sl_part_summary *sl_topics_summary_find(sl_topics *ts, const char *topic,
                                        int32_t part)
{
    psum key = {topic, part, {0}}, *e;
    if (!ts->nsums)
        return NULL;
    e = bsearch(&key, ts->sums, ts->nsums, sizeof(*ts->sums), psum_cmp);
    return e ? &e->sum : NULL;
}

/* Write every partition's summary (durably: FILE.tmp, fsync, rename,
 * fsync of the directory) under `token`. @thread loop, at a clean stop */
sl_err sl_topics_summaries_write(sl_topics *ts, const char *token)
{
    char path[4096];
    size_t n, len = 0, cap = 1 << 16;
    sl_topic **all = sl_topics_sorted(ts, &n);
    char *buf = malloc(cap);
    sl_err rc = SL_OK;

    if (!all || !buf) {
        free(all);
        free(buf);
        return SL_ERR_NOMEM;
    }
    len = (size_t)snprintf(buf, cap, "sluice-partitions 1 %s\n", token);
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        for (int32_t k = 0; k < all[i]->nparts; k++) {
            sl_part_summary m;
            if (cap - len < 512) {
                char *nb = realloc(buf, cap * 2);
                if (!nb) {
                    rc = SL_ERR_NOMEM;
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            sl_part_summary_get(all[i]->parts[k]->part, &m);
            len += (size_t)snprintf(
                buf + len, cap - len,
                "%s %d %lld %lld %llu %u %lld %llu %lld\n", all[i]->name,
                (int)k, (long long)m.start, (long long)m.end,
                (unsigned long long)m.bytes, (unsigned)m.nsegs,
                (long long)m.first_max_ts, (unsigned long long)m.first_bytes,
                (long long)m.second_base);
        }
    }
    snprintf(path, sizeof(path), "%s/%s", ts->dir, SL_TOPICS_SUMMARY_FILE);
    if (rc == SL_OK)
        rc = sl_fs_write_durable(path, buf, len);
    free(buf);
    free(all);
    return rc;
}
