/*
 * partition_int.h - private to storage/: the structure behind sl_part and
 * the functions partition*.c, producer_state.c, compact.c and flusher.c
 * share about it. Segments are in segment.h. Nothing outside storage/
 * includes this file.
 */
#ifndef SL_PARTITION_INT_H
#define SL_PARTITION_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/batch.h"
#include "protocol/err.h"
#include "storage/journal.h"
#include "storage/partition.h"
#include "storage/segment.h"

struct sl_part {
    char *dir;
    sl_part_cfg cfg;
    pthread_mutex_t mu; /* segs array, (mu) fields; held over no I/O but
                           the tail's pwrite (THE TAIL) */
    sl_seg **segs;      /* sorted by base; last = active */
    size_t nsegs, csegs;
    int64_t next_offset;     /* loop */
    _Atomic int64_t end_a;   /* mirror of next_offset for other threads */
    _Atomic int64_t durable; /* every offset below is fdatasynced */
    _Atomic int failed;      /* an fdatasync failed: refuse appends */
    uint64_t names;          /* (mu) new file names so far (created, rolled) */
    uint64_t names_synced;   /* (mu) names covered by a directory fsync; the
                                directory needs one while below names */
    int64_t low_water;
    int64_t read_cap;   /* loop: cluster high-water mark, INT64_MAX = none */
    uint64_t trunc_gen; /* (mu) + 1 per sl_part_truncate: a sync taken
                           before it publishes nothing */
    uint64_t gen;       /* bumped when segments are deleted or rewritten */
    uint64_t uid;       /* unique in the process (the recent appends) */
    /* Lazy loading (partition.c, "LAZY PARTITIONS"): 0 while only the
     * summary is known (no segment, no descriptor, no index in memory);
     * the loop loads the segments at the first use that needs them. */
    int loaded;
    int from_summary;    /* opened from a clean stop's summary: a load
                            fdatasyncs nothing */
    sl_err load_err;     /* a load failed: every later use returns it */
    sl_part_summary sum; /* what the summary said (valid while !loaded) */
    /* partition_startup.c: this run's line for the partition in
     * partitions.touched (0 = none yet, UINT64_MAX = none needed). */
    uint64_t touch_seq;
    int64_t used_ms; /* loop: last use (coarse: the maintenance clock) */
    /* Damaged batches found by recovery or by readers (loop); allocated
     * (SL_PART_BAD_MAX) at the first one. */
    sl_part_bad *bad;
    size_t nbad;
    _Atomic uint64_t bad_total;
    uint64_t rd_records, rd_bytes; /* loop: handed out by sl_part_read */
    struct sl_pstate *ps; /* loop: idempotent producers; NULL until first
                             needed (producer_state.c) */
    int ps_files;         /* loop: a .producers snapshot exists */
    int ps_opened;        /* loop: sl_part__idem_open ran */
    /* The write-behind tail (partition.c, "THE TAIL"): bytes
     * [tail_pos, tail_pos + tail_len) of the active segment, appended
     * (s->size counts them) but not yet written to its file. (mu); the
     * loop reads tail_n without the lock (only it makes it grow). */
    uint8_t *tail;
    size_t tail_len, tail_cap;
    uint64_t tail_pos;
    int tail_used; /* (mu) an append went to it since the last release */
    _Atomic size_t tail_n;
    /* Flusher bookkeeping, guarded by the flusher's own mutex. */
    int fl_pending;
    int fl_touched; /* in the journal's set to checkpoint */
    int64_t fl_due_ms;
};

/* ---- partition_startup.c: start-up, partitions a run changed ------- */

/* 1 while the broker opens its partitions at start (their recovery is
 * made durable by one syncfs at the end, not an fdatasync each). */
int sl_part__startup_deferred(void);

/* Before p's first change of this run: its line in partitions.touched
 * (write(2)); durable = 1 also fdatasyncs it (changes that are not
 * appends). @thread loop */
sl_err sl_part__touch(sl_part *p, int durable);
/* Make p's line durable (before a durable offset of p is published).
 * @thread any */
sl_err sl_part__touched_sync(const sl_part *p);

/* ---- producer_state.c: the idempotent producer's hooks ------------- */

/* Before appending h (producer_id >= 0): build the state if needed, then
 * check it (sl_pstate_check; with SL_PART_APPEND_REPLICA only the fields'
 * signs). */
sl_err sl_part__idem_check(sl_part *p, const sl_batch_hdr *h, unsigned flags,
                           int64_t now_ms, int *dup, int64_t *base,
                           int64_t *next);
/* After appending h (base_offset assigned). */
void sl_part__idem_record(sl_part *p, const sl_batch_hdr *h, int64_t now_ms);
/* Before the first append since open (a roll, a truncation): delete
 * snapshots above the log end (its tail was cut by recovery), note
 * whether one is left. One directory listing per partition and run. */
void sl_part__idem_open(sl_part *p);
/* Before a roll: snapshot the state at p->next_offset. */
void sl_part__idem_roll(sl_part *p, int64_t now_ms);
/* The log was cut back to end (recovery, truncation): forget the state,
 * delete snapshots above end. */
void sl_part__idem_cut(sl_part *p, int64_t end);
void sl_part__idem_free(sl_part *p);

/* ---- partition*.c (for each other, compact.c and flusher.c) --------- */

/* Remember a damaged range [first, last] (once per first offset; the
 * first SL_PART_BAD_MAX are kept). 1 when it was new. @thread loop */
int sl_part__note_bad(sl_part *p, int64_t first, int64_t last, const char *why);

/* The recent appends (partition.c): a copy of each small append, so
 * that the reader that delivers it at once (a queue group's consumer
 * waiting for it) copies it from memory instead of reading the file.
 * sl_part__recent_get copies [pos, end of that append) of segment s into
 * dst (at most max bytes) and returns how many, 0 when it does not hold
 * [pos, pos + need). @thread loop (any other: a no-op, and 0) */
void sl_part__recent_put(sl_part *p, const sl_seg *s, uint64_t pos,
                         const uint8_t *batch, size_t len);
size_t sl_part__recent_get(const sl_part *p, const sl_seg *s, uint64_t pos,
                           size_t need, uint8_t *dst, size_t max);

/* Load p's segments if only its summary is known (sl_part_open_lazy).
 * @thread loop */
sl_err sl_part__load(sl_part *p);
/* Note a use of p (for sl_part_set_idle_unload_ms). @thread loop */
void sl_part__used(sl_part *p);
/* The loop thread's read buffer (SL_SCRATCH_SIZE), shared by every
 * partition: one per thread, not one per partition. NULL if out of
 * memory. */
uint8_t *sl_part__scratch(void);

/* The tail (partition.c): write it into the active segment's file.
 * sl_part__tail_write: holds p->mu (any thread; opens the file by name
 * when the open-file cache closed it); a failed write marks p failed.
 * sl_part__tail_flush: takes p->mu, a no-op when the tail is empty;
 * call before reading p's files or changing their length.
 * sl_part__tail_copy: copy [pos, pos + n) of segment s into dst, from the
 * tail where it holds them, else from the file; holds p->mu. */
sl_err sl_part__tail_write(sl_part *p);
sl_err sl_part__tail_flush(sl_part *p);
sl_err sl_part__tail_copy(sl_part *p, const sl_seg *s, uint64_t pos, size_t n,
                          uint8_t *dst);
/* Drop the tail's buffer (after a write: nothing in it); unused_only:
 * only if no append used it since the last call (a checkpoint keeps the
 * buffers of partitions still written). Holds p->mu. */
void sl_part__tail_release(sl_part *p, int unused_only);

/* Index of the segment holding offset (floor by base); 0 if below. */
size_t sl_part__seg_for(const sl_part *p, int64_t offset);
/* Offset after the segment i (next base, or end of log). */
int64_t sl_part__seg_end(const sl_part *p, size_t i);
/* Index of the segment whose base is exactly base; -1 if gone. The
 * caller holds p->mu or is the loop. */
ssize_t sl_part__seg_index(const sl_part *p, int64_t base);
/* A close-on-exec duplicate of fd (a sync or a zero-copy read keeps its
 * own descriptor while the open-file cache may close the segment's). */
int sl_part__dupfd(int fd);
/* sl_part_sync, also reporting how many fdatasync/fsync calls it made. */
sl_err sl_part__sync(sl_part *p, uint64_t *nsyncs);
/* sl_part__sync on the loop thread (an inline round, flusher.c): the
 * segments' own descriptors are synced, not duplicates, since only the
 * loop closes them (fdcache.c) and it is busy with this. */
sl_err sl_part__sync_loop(sl_part *p, uint64_t *nsyncs);
/* flags 0: sl_part__sync. SL_PART_SYNC_FILES: the journal's checkpoint:
 * also the bytes only the journal covers (file_synced < size).
 * SL_PART_SYNC_LOOP: sl_part__sync_loop. */
#define SL_PART_SYNC_FILES 1
#define SL_PART_SYNC_LOOP 2
sl_err sl_part__sync_files(sl_part *p, int flags, uint64_t *nsyncs);

/* Journaled ranges waiting for the journal's fdatasync. */
#define SL_JP_SEGS 4
/* A partition with more than this to sync in one round is synced the
 * classic way: the journal helps many small ranges, not one big one. */
#define SL_JP_MAX_COPY (1024u * 1024u)
typedef struct sl_part_jpend {
    sl_part *p;
    size_t nsegs;
    int64_t base[SL_JP_SEGS];  /* segments */
    uint64_t size[SL_JP_SEGS]; /* their bytes up to here are journaled */
    int64_t target;            /* durable offset to publish */
    uint64_t trunc_gen;        /* p->trunc_gen when taken */
} sl_part_jpend;
enum {
    SL_PART_J_ADDED = 0,   /* in the journal's buffer; *pend filled */
    SL_PART_J_NOTHING = 1, /* nothing to sync (or the partition failed) */
    SL_PART_J_CLASSIC = 2  /* needs sl_part__sync (journal.c rule 2) */
};
/* Journal round, step 1: copy p's unsynced bytes into j (under p->mu
 * only for the snapshot). @thread flusher */
int sl_part__journal(sl_part *p, sl_journal *j, sl_part_jpend *pend);
/* The journal's checkpoint: sl_part__sync_files(p, 1): fdatasync every
 * .log with bytes only the journal covers (file_synced < size), rolled
 * index files and the directory if it has new names. Safe beside the
 * flusher's own syncs of p (each publishes only what it synced, by
 * max). A failed fdatasync marks p failed. @thread checkpoint */
sl_err sl_part__checkpoint(sl_part *p);
/* Step 2, after sl_journal__commit succeeded: publish. @thread flusher */
void sl_part__journal_done(const sl_part_jpend *pend);

#endif
