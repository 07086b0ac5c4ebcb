/*
 * accum.c - producer batching. See accum.h.
 */
#include "client/src/accum.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sluice.h"

/* The process pool of released batches (see "Recycling" below). */
static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static sl_pbatch *g_pool;
static size_t g_pool_n, g_pool_bytes;
static size_t g_live; /* accumulators between init and fini */

void sl_accum_init(sl_accum *a, size_t batch_size, uint32_t batch_records,
                   int linger_ms, int codec)
{
    memset(a, 0, sizeof(*a));
    a->batch_size = batch_size;
    a->batch_records = batch_records;
    a->linger_ms = linger_ms;
    a->codec = codec;
    a->pid = -1;
    a->epoch = -1;
    pthread_mutex_lock(&g_pool_mu);
    g_live++;
    pthread_mutex_unlock(&g_pool_mu);
}

void sl_accum_set_producer(sl_accum *a, int64_t pid, int16_t epoch)
{
    a->pid = pid;
    a->epoch = epoch;
    for (size_t i = 0; i < a->ntopics; i++)
        if (a->topics[i].seq)
            memset(a->topics[i].seq, 0,
                   (size_t)a->topics[i].nparts * sizeof(int32_t));
}

static void batch_free(sl_pbatch *b)
{
    sl_bb_fini(&b->bb);
    free(b->opaque);
    free(b->ts);
    free(b);
}

/*
 * Recycling. A sent batch comes back (sl_accum_release) once its result is
 * delivered, and its buffer, resident by then, takes the next batch: a
 * producer that keeps up to max.in.flight requests out reuses the same
 * few dozen buffers for a whole run. A batch's buffer of 256 KiB is fresh
 * memory the first time, faulted in page by page, and many producers in
 * one process (a thread and a producer per connection, as many
 * applications hold them) each made their own: 256 producer threads that
 * each send a few batches faulted in every byte they sent (73 k faults for
 * 2 M records of 100 B, against 10 k for one producer; MADV_POPULATE_WRITE
 * and the faults were a fifth of the client's CPU; issue 20,
 * docs/benchmarks.md "Issue 20: session 13"). So an accumulator keeps
 * only OWN_SPARE batches of its own and gives the rest to a pool of the
 * process, from which any accumulator without a spare takes one before it
 * allocates: a batch acknowledged for one producer takes another
 * producer's records while that one's first batches are still in flight.
 * The pool holds at most POOL_MAX_BYTES (batches beyond it are freed), and
 * an accumulator's spares go to it when it is freed; when the last
 * accumulator of the process is freed (no producer left) the pool is
 * emptied, so a process that closed its producers gives the memory back
 * (bindings/python/tests/test_memory.py). One mutex; taken once
 * per batch, not per record. Off under ASan (reuse would hide a use after
 * free).
 *
 * A batch's buffer is handed on as soon as its result is known, not
 * when poll delivers the report (sl_accum_done): it goes to a's bank of
 * two, from which a's next batch, or a released shell without a buffer,
 * takes it; the batch keeps the opaques and timestamps its report needs.
 *
 * What this does not remove (issue 20, docs/benchmarks.md "Issue 20:
 * producer connections, session 14"): 256 producer threads of a run of
 * 2 M durable records still make most batches in new memory. Each thread
 * makes about five batches and, with durable acks, fills its next while
 * its last waits for an fsync round; a producer that waited for its reply
 * before starting a batch in a new buffer halved the page faults but
 * left every thread waiting on the same round (records/s lower in 12 of
 * 16 alternating pairs; equal medians with acks written), so it was not
 * kept. Nor were buffers from regions of libsluice's own, on 4 KiB pages
 * (the same faults: the live set is the run's data) or on huge pages
 * (a tenth of the faults but twice the client's CPU on this VM, whose
 * host had taken the free 2 MiB blocks back; docs/benchmarks.md "Issue
 * 20: client at 256 producer connections, session 15").
 */
#define OWN_SPARE 2
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX_BYTES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_MAX_BYTES 0
#endif
#endif
#ifndef POOL_MAX_BYTES
#define POOL_MAX_BYTES ((size_t)64 << 20)
#endif

static size_t batch_bytes(const sl_pbatch *b)
{
    return b->bb.buf.cap +
           (size_t)b->cap * (sizeof(*b->opaque) + sizeof(*b->ts));
}

static void pool_put(sl_pbatch *b)
{
    size_t sz = batch_bytes(b);
    pthread_mutex_lock(&g_pool_mu);
    if (g_pool_bytes + sz <= POOL_MAX_BYTES) {
        b->next = g_pool;
        g_pool = b;
        g_pool_n++;
        g_pool_bytes += sz;
        b = NULL;
    }
    pthread_mutex_unlock(&g_pool_mu);
    if (b)
        batch_free(b);
}

static sl_pbatch *pool_get(void)
{
    sl_pbatch *b;
    if (!__atomic_load_n(&g_pool, __ATOMIC_RELAXED))
        return NULL; /* a stale look only costs an allocation */
    pthread_mutex_lock(&g_pool_mu);
    b = g_pool;
    if (b) {
        g_pool = b->next;
        g_pool_n--;
        g_pool_bytes -= batch_bytes(b);
    }
    pthread_mutex_unlock(&g_pool_mu);
    return b;
}

void sl_accum_pool_stats(size_t *batches, size_t *bytes)
{
    pthread_mutex_lock(&g_pool_mu);
    *batches = g_pool_n;
    *bytes = g_pool_bytes;
    pthread_mutex_unlock(&g_pool_mu);
}

void sl_accum_fini(sl_accum *a)
{
    size_t i;
    sl_pbatch *b, *n;
    for (b = a->age_head; b; b = n) {
        n = b->next;
        batch_free(b);
    }
    for (b = a->ready_head; b; b = n) {
        n = b->next;
        batch_free(b);
    }
    for (b = a->spare; b; b = n) {
        n = b->next;
        pool_put(b);
    }
    while (a->nbank)
        sl_wb_fini(&a->bank[--a->nbank]);
    pthread_mutex_lock(&g_pool_mu);
    if (g_live > 0)
        g_live--;
    b = g_live == 0 ? g_pool : NULL;
    if (b) {
        g_pool = NULL;
        g_pool_n = 0;
        g_pool_bytes = 0;
    }
    pthread_mutex_unlock(&g_pool_mu);
    for (; b; b = n) {
        n = b->next;
        batch_free(b);
    }
    for (i = 0; i < a->ntopics; i++) {
        free(a->topics[i].name);
        free(a->topics[i].open);
        free(a->topics[i].seq);
        free(a->topics[i].flight);
    }
    free(a->topics);
    memset(a, 0, sizeof(*a));
}

int sl_accum_find(const sl_accum *a, const char *topic)
{
    size_t i;
    for (i = 0; i < a->ntopics; i++)
        if (strcmp(a->topics[i].name, topic) == 0)
            return (int)i;
    return -1;
}

int sl_accum_add_topic(sl_accum *a, const char *topic, int32_t nparts)
{
    int i = sl_accum_find(a, topic);
    sl_accum_topic *t;
    sl_pbatch **open;

    if (nparts < 1)
        nparts = 1;
    if (i < 0) {
        if (a->ntopics == a->tcap) {
            size_t ncap = a->tcap ? a->tcap * 2 : 8;
            sl_accum_topic *nt = realloc(a->topics, ncap * sizeof(*nt));
            if (!nt)
                return -1;
            a->topics = nt;
            a->tcap = ncap;
        }
        t = &a->topics[a->ntopics];
        memset(t, 0, sizeof(*t));
        t->name = strdup(topic);
        if (!t->name)
            return -1;
        i = (int)a->ntopics++;
    }
    t = &a->topics[i];
    if (nparts > t->nparts) {
        int32_t *seq = realloc(t->seq, (size_t)nparts * sizeof(*seq));
        if (!seq)
            return -1;
        memset(seq + t->nparts, 0, (size_t)(nparts - t->nparts) * sizeof(*seq));
        t->seq = seq;
        open = realloc(t->open, (size_t)nparts * sizeof(*open));
        if (!open)
            return -1;
        memset(open + t->nparts, 0,
               (size_t)(nparts - t->nparts) * sizeof(*open));
        t->open = open;
        {
            sl_accum_flight *fl =
                realloc(t->flight, (size_t)nparts * sizeof(*fl));
            if (!fl)
                return -1;
            memset(fl + t->nparts, 0,
                   (size_t)(nparts - t->nparts) * sizeof(*fl));
            t->flight = fl;
        }
        t->sticky = (int32_t)(a->rr++ % (uint32_t)nparts);
    }
    /* Shrinking never happens (partitions are not removed); keep slots. */
    if (nparts > t->nparts)
        t->nparts = nparts;
    return i;
}

int32_t sl_accum_pick(sl_accum *a, int tidx, const void *key, size_t klen)
{
    sl_accum_topic *t = &a->topics[tidx];
    if (key)
        return sluice_partition_for_key(key, klen, t->nparts);
    if (a->null_rr && t->nparts > 1) {
        int32_t p = t->sticky;
        t->sticky = (t->sticky + 1) % t->nparts;
        return p;
    }
    return t->sticky;
}

static void age_unlink(sl_accum *a, sl_pbatch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        a->age_head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        a->age_tail = b->prev;
    b->next = b->prev = NULL;
}

/* The last full batch of any accumulator in the process: many producers
 * that each make a few batches (one per thread, as bench/conn_scaling.sh
 * runs them) reserve ahead from their first batch on. Relaxed atomics:
 * a stale hint only costs a realloc. */
static size_t g_full_bytes;
static uint32_t g_full_records;

/* A new batch (not a recycled one) reserves the size and record count of
 * the last batch that closed full, its own accumulator's or else the
 * process's (at most batch.size and batch.records), instead of growing
 * from 1 KiB by doubling. A failed reservation is left to growth. */
static void batch_reserve(sl_accum *a, sl_pbatch *b)
{
    size_t bytes = a->full_bytes;
    uint32_t recs = a->full_records;
    if (!bytes) {
        bytes = __atomic_load_n(&g_full_bytes, __ATOMIC_RELAXED);
        recs = __atomic_load_n(&g_full_records, __ATOMIC_RELAXED);
        if (bytes > a->batch_size)
            bytes = a->batch_size;
        if (recs > a->batch_records)
            recs = a->batch_records;
    }
    if (bytes && b->bb.buf.cap < bytes + 4096)
        (void)sl_wb_reserve(&b->bb.buf, bytes + 4096);
    if (recs && !b->cap) {
        b->opaque = malloc(recs * sizeof(*b->opaque));
        b->ts = malloc(recs * sizeof(*b->ts));
        if (b->opaque && b->ts) {
            b->cap = recs;
        } else {
            free(b->opaque);
            free(b->ts);
            b->opaque = NULL;
            b->ts = NULL;
        }
    }
}

/*
 * A new batch's buffer is fresh memory: copying records into it faults
 * each 4 KiB page in on its own. Ahead of the records, the next POP_STEP
 * of the buffer (never beyond what it already holds, so nothing is
 * touched that the batch may not use) is faulted in with one
 * MADV_POPULATE_WRITE (Linux 5.14; elsewhere the pages fault as before):
 * about a third less time than 64 separate faults here, and 256
 * producer threads of one process fault pages in every batch they make
 * (issue 20, docs/benchmarks.md). A recycled batch's buffer is resident
 * already and skips it.
 */
#define POP_STEP (64 * 1024)

static void populate_ahead(sl_pbatch *b)
{
#ifdef MADV_POPULATE_WRITE
    const sl_wb *w = &b->bb.buf;
    uintptr_t from, to;
    if (w->len < b->pop_end || w->cap - w->len < POP_STEP)
        return;
    from = ((uintptr_t)w->p + w->len + 4095) & ~(uintptr_t)4095;
    to = ((uintptr_t)w->p + w->len + POP_STEP) & ~(uintptr_t)4095;
    if (to > from)
        (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
    b->pop_end = w->len + POP_STEP - 4096;
#else
    (void)b;
#endif
}

/* Give b (which has none) a buffer from the bank; 0 if it is empty. */
static int bank_take(sl_accum *a, sl_pbatch *b)
{
    if (!a->nbank)
        return 0;
    a->nbank--;
    b->bb.buf = a->bank[a->nbank];
    b->touched = a->bank_touched[a->nbank];
    return 1;
}

/* Unlink and return a's first spare shell with a buffer (with_buf), or
 * its first at all; NULL if none. */
static sl_pbatch *spare_take(sl_accum *a, int with_buf)
{
    sl_pbatch **pb, *b;
    for (pb = &a->spare; (b = *pb); pb = &b->next)
        if (!with_buf || b->bb.buf.p) {
            *pb = b->next;
            a->nspare--;
            return b;
        }
    return NULL;
}

static sl_pbatch *batch_new(sl_accum *a, int tidx, int32_t part, int64_t now)
{
    /* a spare with its buffer; else, with nothing in the bank, the
     * pool's (its shells keep theirs); else any spare shell, or a new
     * one, with the bank's buffer or a new one */
    sl_pbatch *b = spare_take(a, 1);
    if (!b && !a->nbank)
        b = pool_get();
    if (!b)
        b = spare_take(a, 0);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
    }
    if (b->bb.buf.p || bank_take(a, b)) {
        sl_bb_reset(&b->bb);
        b->bb.codec = a->codec;
        b->pop_end = b->touched; /* resident up to there */
    } else {
        sl_bb_init(&b->bb, a->codec);
        b->touched = 0;
        b->pop_end = 0;
    }
    batch_reserve(a, b); /* what a new buffer or shell lacks */
    b->next = b->prev = NULL;
    b->tidx = tidx;
    b->partition = part;
    b->n = 0;
    b->created_ms = now;
    b->order = ++a->created;
    b->enc = NULL;
    b->enc_len = 0;
    b->last_err = 0;
    b->attempts = 0;
    /* append to the age list */
    b->prev = a->age_tail;
    if (a->age_tail)
        a->age_tail->next = b;
    else
        a->age_head = b;
    a->age_tail = b;
    return b;
}

/* Detach the open batch of its slot (moving the sticky partition on; with
 * round-robin for keyless records the rotation is already per record, and a
 * batch sent early by its linger must not skip a partition). */
static void detach_slot(sl_accum *a, sl_pbatch *b)
{
    sl_accum_topic *t = &a->topics[b->tidx];
    if (b->partition < t->nparts && t->open[b->partition] == b) {
        t->open[b->partition] = NULL;
        if (!a->null_rr && t->sticky == b->partition && t->nparts > 1)
            t->sticky = (t->sticky + 1) % t->nparts;
    }
}

sl_err sl_accum_add(sl_accum *a, int tidx, int32_t partition, int64_t ts,
                    const void *key, size_t klen, const void *value,
                    size_t vlen, const sl_header *hdrs, size_t nhdrs,
                    void *opaque, int64_t now_ms, int *full)
{
    sl_accum_topic *t = &a->topics[tidx];
    sl_pbatch *b;
    sl_err rc;
    size_t i, est = klen + vlen + 32;

    *full = 0;
    if (partition < 0 || partition >= t->nparts)
        return SL_ERR_UNKNOWN_PARTITION;
    for (i = 0; i < nhdrs; i++)
        est += hdrs[i].key_len + hdrs[i].value_len + 8;
    if (est > SL_BATCH_MAX_SIZE - SL_BATCH_HDR_SIZE - 1024)
        return SL_ERR_TOO_LARGE;
    b = t->open[partition];
    if (b && sl_bb_size(&b->bb) + est > SL_BATCH_MAX_SIZE - 1024) {
        /* Would overflow the hard limit: close this batch first. */
        age_unlink(a, b);
        detach_slot(a, b);
        b->next = NULL;
        b->prev = a->ready_tail;
        if (a->ready_tail)
            a->ready_tail->next = b;
        else
            a->ready_head = b;
        a->ready_tail = b;
        b = NULL;
    }
    if (!b) {
        b = batch_new(a, tidx, partition, now_ms);
        if (!b)
            return SL_ERR_NOMEM;
        t->open[partition] = b;
    }
    if (b->n == b->cap) {
        uint32_t ncap = b->cap ? b->cap * 2 : 64;
        void **o = realloc(b->opaque, ncap * sizeof(*o));
        int64_t *tsv;
        if (!o)
            return SL_ERR_NOMEM;
        b->opaque = o;
        tsv = realloc(b->ts, ncap * sizeof(*tsv));
        if (!tsv)
            return SL_ERR_NOMEM;
        b->ts = tsv;
        b->cap = ncap;
    }
    rc = sl_bb_add(&b->bb, ts, key, klen, value, vlen, hdrs, nhdrs);
    if (rc != SL_OK)
        return rc;
    populate_ahead(b);
    b->opaque[b->n] = opaque;
    b->ts[b->n] = ts;
    b->n++;
    a->records++;
    if (sl_bb_size(&b->bb) >= a->batch_size || b->n >= a->batch_records) {
        a->full_bytes = sl_bb_size(&b->bb);
        a->full_records = b->n;
        __atomic_store_n(&g_full_bytes, a->full_bytes, __ATOMIC_RELAXED);
        __atomic_store_n(&g_full_records, b->n, __ATOMIC_RELAXED);
        age_unlink(a, b);
        detach_slot(a, b);
        b->prev = a->ready_tail;
        if (a->ready_tail)
            a->ready_tail->next = b;
        else
            a->ready_head = b;
        a->ready_tail = b;
        *full = 1;
    }
    return SL_OK;
}

/* What taking b will touch: its buffer (the CRC and the request's copy
 * read it), its partition's slot, sequence and flight entry, and the next
 * batch's own struct, whose fields the next call reads. A producer spread
 * over thousands of partitions takes thousands of batches in a row, each
 * cold (sessions 16-17, docs/benchmarks.md); fetching the next one while
 * this one is framed hides most of the misses. */
static void prefetch_batch(const sl_accum *a, const sl_pbatch *b)
{
    const sl_accum_topic *t = &a->topics[b->tidx];
    const uint8_t *d = b->bb.buf.p;
    if (d) {
        __builtin_prefetch(d);
        __builtin_prefetch(d + 64);
        __builtin_prefetch(d + 128);
    }
    if (b->partition < t->nparts) {
        __builtin_prefetch(&t->open[b->partition]);
        __builtin_prefetch(&t->seq[b->partition]);
        if (t->flight)
            __builtin_prefetch(&t->flight[b->partition]);
    }
    if (b->next) {
        __builtin_prefetch(b->next);
        __builtin_prefetch((const uint8_t *)b->next + 64);
        __builtin_prefetch((const uint8_t *)b->next + 128);
    }
}

sl_pbatch *sl_accum_take(sl_accum *a, int64_t now_ms, int all, sl_err *err)
{
    sl_pbatch *b = a->ready_head;
    *err = SL_OK;
    if (b) {
        a->ready_head = b->next;
        if (a->ready_head)
            a->ready_head->prev = NULL;
        else
            a->ready_tail = NULL;
        b->next = b->prev = NULL;
    } else {
        b = a->age_head;
        if (!b || (!all && b->created_ms + a->linger_ms > now_ms))
            return NULL;
        age_unlink(a, b);
        detach_slot(a, b);
        if (a->age_head)
            prefetch_batch(a, a->age_head);
    }
    if (!b->enc) {
        if (a->pid >= 0) { /* stamped once: a resend keeps its sequence */
            int32_t *seq = &a->topics[b->tidx].seq[b->partition];
            b->bb.producer_id = a->pid;
            b->bb.producer_epoch = a->epoch;
            b->bb.base_sequence = *seq;
            *seq = sl_seq_add(*seq, b->n);
            b->stamped = ++a->stamps;
        } else {
            b->bb.producer_id = -1;
            b->bb.producer_epoch = -1;
            b->bb.base_sequence = -1;
        }
        *err = sl_bb_finish(&b->bb, &b->enc, &b->enc_len);
    }
    a->records -= b->n;
    return b;
}

void sl_accum_unget(sl_accum *a, sl_pbatch *b)
{
    b->prev = NULL;
    b->next = a->ready_head;
    if (a->ready_head)
        a->ready_head->prev = b;
    else
        a->ready_tail = b;
    a->ready_head = b;
    a->records += b->n;
}

int64_t sl_accum_next_due(const sl_accum *a)
{
    if (a->ready_head)
        return 0;
    if (!a->age_head)
        return INT64_MAX;
    return a->age_head->created_ms + a->linger_ms;
}

void sl_accum_done(sl_accum *a, sl_pbatch *b)
{
    if (!b->bb.buf.p || a->nbank >= sizeof(a->bank) / sizeof(a->bank[0]))
        return;
    if (b->bb.buf.len > b->touched)
        b->touched = b->bb.buf.len;
    a->bank[a->nbank] = b->bb.buf;
    a->bank_touched[a->nbank++] = b->touched;
    memset(&b->bb.buf, 0, sizeof(b->bb.buf));
    b->touched = 0;
    b->enc = NULL;
    b->enc_len = 0;
}

void sl_accum_release(sl_accum *a, sl_pbatch *b)
{
    if (!b->bb.buf.p)
        (void)bank_take(a, b); /* a shell without a buffer gets one back */
    if (b->bb.buf.len > b->touched)
        b->touched = b->bb.buf.len;
    if (a->nspare >= OWN_SPARE) {
        sl_pbatch *x;
        for (x = a->spare; x && b->bb.buf.p; x = x->next)
            if (!x->bb.buf.p) { /* a spare shell keeps the buffer */
                x->bb.buf = b->bb.buf;
                x->touched = b->touched;
                memset(&b->bb.buf, 0, sizeof(b->bb.buf));
                b->touched = 0;
            }
        pool_put(b);
        return;
    }
    b->next = a->spare;
    a->spare = b;
    a->nspare++;
}
