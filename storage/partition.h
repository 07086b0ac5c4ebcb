/*
 * partition.h - one partition log: a directory of segments.
 *
 * CONTRACT shared with broker/ and groups/. Implementation details (segment,
 * index, recovery, retention, compaction) live in the other storage/ files.
 *
 * Threads: a partition is owned by the event loop thread ("loop"); only
 * sl_part_sync() and sl_part_durable_offset() may be called from the flusher
 * thread ("flusher"), concurrently with loop calls. The partition protects
 * what they share (segment list, write position) internally.
 */
#ifndef SL_PARTITION_H
#define SL_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "protocol/err.h"
#include "protocol/rd.h"

enum sl_flush_policy {
    SL_FLUSH_ALWAYS = 0, /* every append is fsynced by the next flusher round */
    SL_FLUSH_INTERVAL = 1, /* fsync at most every flush_interval_ms */
    SL_FLUSH_NEVER = 2     /* leave it to the OS (and to close) */
};

typedef struct sl_part_cfg {
    uint64_t segment_bytes;        /* roll at this size (default 1 GiB) */
    int64_t segment_ms;            /* roll when older (default 7 days) */
    int64_t retention_bytes;       /* -1 = unlimited (default) */
    int64_t retention_ms;          /* -1 = unlimited; default 7 days */
    uint32_t index_interval_bytes; /* sparse index step (default 4096) */
    int flush;                     /* enum sl_flush_policy (default ALWAYS) */
    int64_t flush_interval_ms;     /* for SL_FLUSH_INTERVAL (default 1000) */
    int compact;                   /* 1 = log compaction (latest per key) */
    int64_t delete_retention_ms;   /* keep tombstones this long (1 day) */
    uint64_t preallocate_bytes;    /* fallocate the active .log this far
                                      ahead of its end; 0 = off (default) */
} sl_part_cfg;

void sl_part_cfg_defaults(sl_part_cfg *cfg);

typedef struct sl_part sl_part;

/*
 * Open (creating if missing) the partition directory `dir` and recover it:
 * scan the tail, check every batch CRC, truncate a torn or corrupt tail,
 * rebuild indexes that disagree. cfg is copied. *out written on success.
 * @thread loop
 */
sl_err sl_part_open(const char *dir, const sl_part_cfg *cfg, sl_part **out);

/*
 * Lazy partitions. What a partition's metadata needs (its offsets and
 * size, and what retention would look at) without opening its segments:
 * the broker writes it for every partition at a clean stop and opens each
 * partition from it at the next start (sl_part_open_lazy), so a start
 * does not grow with the partitions' contents and an idle partition holds
 * no descriptor, no index and no buffer. The segments are opened and
 * recovered (sl_part_open's scan) at the first use that reads or writes
 * them; until then the getters below answer from the summary.
 */
typedef struct sl_part_summary {
    int64_t start, end;   /* log start and end offsets */
    uint64_t bytes;       /* sl_part_size_bytes */
    uint32_t nsegs;       /* segments (>= 1 once loaded; 0 = none yet) */
    int64_t first_max_ts; /* the oldest segment's max timestamp
                             (INT64_MIN: none), for retention */
    uint64_t first_bytes; /* its bytes */
    int64_t second_base;  /* its end: the next segment's base (= end
                             when it is the only one) */
} sl_part_summary;

/* The summary of an empty new partition (offsets 0, no segment). */
void sl_part_summary_empty(sl_part_summary *sum);
/* p's summary: from its segments when loaded, else the one it was opened
 * with. @thread loop */
void sl_part_summary_get(const sl_part *p, sl_part_summary *out);
/*
 * Open the partition directory `dir` without reading it (when sum is
 * empty, the directory is created, and its name fsynced, if missing; one
 * with data must exist): sum says what it holds and must come from
 * a clean stop of the same data (or be sl_part_summary_empty for a
 * directory that is new or empty). The segments are opened at the first
 * append, read, iteration, truncation, time lookup or compaction, or when
 * retention has something to do (sl_part_maintain); a failure there is
 * returned by that call and by every later one. Because a clean stop
 * synced everything, loading such a partition fdatasyncs nothing.
 * 1 if p's segments are loaded (sl_part_loaded). @thread loop
 */
sl_err sl_part_open_lazy(const char *dir, const sl_part_cfg *cfg,
                         const sl_part_summary *sum, sl_part **out);
int sl_part_loaded(const sl_part *p);

/*
 * Start-up and clean stop of a data directory (the broker; storage tests
 * that call only sl_part_open keep its per-partition fdatasyncs).
 *
 * sl_part_startup_begin: before the partitions of data_dir are opened.
 * If the clean-shutdown marker (DATA/clean-shutdown, written by
 * sl_part_shutdown_mark) is there, it is removed durably (a later crash
 * must not find it) and *clean = 1: the last stop synced everything. From
 * here on sl_part_open does not fdatasync what it recovers.
 * sl_part_startup_end: after they are opened: unless the start was clean,
 * one syncfs of data_dir makes whatever a kill -9 left in the page cache
 * durable (and flushes the device cache) before anything is served:
 * one call instead of an fdatasync per partition. A failure is returned
 * (refuse to start).
 * sl_part_shutdown_mark: after every partition was closed (sl_part_free)
 * at a clean stop, and only when none failed: syncfs of data_dir (index
 * files and trims written at close included), then the marker, durably.
 * @thread loop
 */
#define SL_PART_CLEAN_MARKER "clean-shutdown"

/*
 * Starts after a crash (storage/partition_startup.c): every run lists the
 * partitions it changed in DATA/partitions.touched, under the token of
 * the summary file it started from; a start after a crash recovers those
 * and opens every other one from the summary.
 *
 * sl_part_touched_read: the token of the file left by the last run ("" if
 * none or incomplete) and, remembered for sl_part_touched_has, its lines.
 * sl_part_touched_has: did a run since the summary change the partition
 * in dir (1 when it cannot tell)?
 * sl_part_touched_begin: track this run's changes under token: a new file
 * (keep = 0), or appending to the one read (keep = 1, its lines stay
 * known). An empty token stops tracking (the file goes).
 * sl_part_touched_stop: stop tracking and remove the file.
 * sl_part_touched_end: stop tracking, keep the file (a clean stop).
 * @thread loop
 */
#define SL_PART_TOUCHED_FILE "partitions.touched"
sl_err sl_part_touched_read(const char *data_dir, char *token, size_t toklen);
int sl_part_touched_has(const char *dir);
sl_err sl_part_touched_begin(const char *data_dir, const char *token, int keep);
void sl_part_touched_stop(const char *data_dir);
/* A partition made anew (a topic created or grown) is listed too: its
 * directory may have held a deleted topic's partition of the same name,
 * which the summary still describes. sl_part_touch writes p's line;
 * sl_part_touched_flush makes the lines written so far durable (one
 * fdatasync; before the creation is committed). */
sl_err sl_part_touch(sl_part *p);
sl_err sl_part_touched_flush(void);
void sl_part_touched_end(void);
sl_err sl_part_startup_begin(const char *data_dir, int *clean);
sl_err sl_part_startup_end(const char *data_dir);
sl_err sl_part_shutdown_mark(const char *data_dir);
/* The same with a note written into the marker (e.g. a token naming the
 * partition summaries written by the same stop), and the note the marker
 * found by the last sl_part_startup_begin carried ("" if none). */
sl_err sl_part_shutdown_mark_note(const char *data_dir, const char *note);
const char *sl_part_startup_note(void);

/* Close fds and free. Does not fsync: call sl_part_sync first if needed.
 * Accepts NULL. The flusher must no longer reference p. @thread loop */
void sl_part_free(sl_part *p);

/* Replace the configuration (e.g. after a topic config change). */
void sl_part_set_cfg(sl_part *p, const sl_part_cfg *cfg);
const sl_part_cfg *sl_part_get_cfg(const sl_part *p);

/*
 * Append one batch (exactly len bytes, as the producer encoded it). Verifies
 * it (sl_batch_verify), writes the assigned base offset into `batch` (the
 * caller's buffer is modified), writes it to the active segment with write(2)
 * (page cache; durability comes from sl_part_sync), rolling the segment
 * first if it is full or too old. Never waits for disk flushes.
 * Returns SL_OK with *base_out = assigned base offset; SL_ERR_MALFORMED /
 * SL_ERR_CORRUPT / SL_ERR_TOO_LARGE for a bad batch; SL_ESYS(ENOSPC) etc.
 * when the write fails (the partial write is cut off again so the log
 * stays consistent and a later append can succeed); SL_ERR_STORAGE if the
 * partition failed earlier (failed fsync) and refuses writes.
 * @thread loop
 */
sl_err sl_part_append(sl_part *p, uint8_t *batch, size_t len, int64_t now_ms,
                      int64_t *base_out);

/*
 * sl_part_append with the idempotent producer (docs/cluster.md 4,
 * storage/producer_state.h). A batch whose producer_id is >= 0 is checked
 * against the partition's producer state first:
 *  - a retry of one of the producer's last 64 batches: nothing appended,
 *    SL_OK with *dup = 1, *base_out = the original base offset and
 *    *next_out = the offset after that batch;
 *  - SL_ERR_DUPLICATE_SEQUENCE: an older retry (stored, offset no longer
 *    known); *next_out = an offset it lies below;
 *  - SL_ERR_OUT_OF_ORDER_SEQUENCE, SL_ERR_PRODUCER_FENCED, nothing
 *    appended.
 * flags SL_PART_APPEND_REPLICA: a follower's copy of its leader's batch:
 * recorded, never refused for its sequence. flags SL_PART_APPEND_VERIFIED:
 * the caller checked these bytes with sl_batch_verify just before (CRC
 * included), so only the header is decoded here. dup and next_out may be
 * NULL.
 * @thread loop
 */
#define SL_PART_APPEND_REPLICA 1u
#define SL_PART_APPEND_VERIFIED 2u
/* flags SL_PART_APPEND_DEFER: a durability round for this append follows
 * soon (the caller asked for one): a small batch may stay in the
 * partition's write-behind tail until that round's journal copy and a
 * later checkpoint or read writes it to the file (partition.c, "THE
 * TAIL"). Never for an append nobody syncs (flush=never, acks written). */
#define SL_PART_APPEND_DEFER 4u
sl_err sl_part_append_ex(sl_part *p, uint8_t *batch, size_t len, int64_t now_ms,
                         unsigned flags, int64_t *base_out, int64_t *next_out,
                         int *dup);
/*
 * Batch h (an idempotent producer's: producer_id >= 0) was refused
 * before it was appended, with an error its producer resends after
 * (NOT_ENOUGH_REPLICAS). If the partition does not know the producer, it
 * now expects h's sequence from it: a later batch of the same producer
 * that arrives first is OUT_OF_ORDER_SEQUENCE (resent by the client behind
 * h) instead of being taken as a new producer's first batch, which would
 * leave h's records out for good (docs/cluster.md section 4). @thread loop
 */
void sl_part_idem_refused(sl_part *p, const sl_batch_hdr *h);
/* The epoch and last sequence the partition knows for producer pid
 * (tests, tools). SL_ERR_NOT_FOUND. @thread loop */
sl_err sl_part_producer(sl_part *p, int64_t pid, int16_t *epoch,
                        int32_t *last_seq);

/* Earliest offset still stored (log start). @thread loop */
int64_t sl_part_start_offset(const sl_part *p);
/* Next offset to be assigned (log end). @thread loop */
int64_t sl_part_end_offset(const sl_part *p);
/* A follower whose leader holds no records in [end, offset) (compacted
 * away there before it copied them, or below its log start) moves its log
 * end on to offset, in a new segment (offsets inside one segment are
 * contiguous; recovery checks that): the next append gets offset. No-op
 * unless offset > end. @thread loop */
sl_err sl_part_skip_to(sl_part *p, int64_t offset, int64_t now_ms);
/* Base offset of the active (last) segment: the lowest offset
 * sl_part_truncate can cut to (loads a lazily opened partition; its log
 * start if that fails). @thread loop */
int64_t sl_part_active_base(sl_part *p);
/* Every offset below this is on disk (fsynced). @thread any */
int64_t sl_part_durable_offset(const sl_part *p);
/*
 * Cluster high-water mark (docs/cluster.md 3.4): readers that iterate
 * (sl_part_iter_next: queue groups, STOMP topic readers) stop before the
 * first batch whose base offset is >= the cap, so they never see a record
 * that is not yet on every in-sync replica. INT64_MAX (the default, and
 * always on a single node) = no cap. sl_part_read takes its limit from the
 * caller (broker/ops.c applies the cap; a follower's fetch reads past it).
 * The cap is always on a batch boundary. @thread loop
 */
void sl_part_set_read_cap(sl_part *p, int64_t cap);
int64_t sl_part_read_cap(const sl_part *p);
/*
 * Cluster followers (KIP-101 style truncation, docs/cluster.md 3.2):
 * sl_part_batch_header copies the SL_BATCH_HDR_SIZE header bytes of the
 * stored batch that holds `offset` into hdr and its base offset into
 * *base (SL_ERR_OFFSET_OUT_OF_RANGE outside the log).
 * sl_part_truncate cuts the log back to `offset`, which must be a batch
 * boundary in the active segment (else SL_ERR_INVALID_ARG, nothing
 * changed); the durable offset and log end follow; open iterators
 * reposition. @thread loop
 */
sl_err sl_part_batch_header(sl_part *p, int64_t offset, uint8_t *hdr,
                            int64_t *base);
sl_err sl_part_truncate(sl_part *p, int64_t offset);
/* Drop every record (a replica moved off this node, docs/cluster.md
 * 10.3): every segment file is deleted and the log starts again, empty,
 * at offset 0; open iterators reposition. *bytes (may be NULL) = the
 * bytes deleted. @thread loop */
sl_err sl_part_reset(sl_part *p, uint64_t *bytes);
/* The same, but the empty log starts at `offset` (>= 0): its log start
 * and end are offset, the next append gets it (a cluster observer's copy
 * that starts at what its groups still need, broker/observer.c).
 * @thread loop */
sl_err sl_part_reset_at(sl_part *p, int64_t offset, uint64_t *bytes);
/* Records and bytes handed out by sl_part_read so far (fetches, queue
 * acquires): a read's slice counts whole, from the offset asked for.
 * @thread loop */
void sl_part_read_stats(const sl_part *p, uint64_t *records, uint64_t *bytes);
/* Bytes of whole batches in the partition's segments (the log's size
 * without indexes or preallocated space); *nsegs (may be NULL) = how many
 * segments. @thread any (takes the partition's mutex) */
uint64_t sl_part_size_bytes(sl_part *p, size_t *nsegs);

/*
 * The open-file cache (storage/fdcache.c): at most `max` segment .log
 * files of all partitions are open at once; the least recently used are
 * closed and reopened on demand. 0 = the default, half of RLIMIT_NOFILE
 * (read when first needed, so raise the limit first). Process-wide.
 * @thread loop
 */
void sl_part_set_max_open_files(size_t max);

/*
 * Idle partitions are unloaded (issue 20): sl_part_maintain turns a
 * loaded partition that nothing appended to, read or iterated over for
 * idle_ms back into its summary (no segment, descriptor, index or
 * producer state in memory; it loads again at its next use, see LAZY
 * PARTITIONS in partition.c), once every byte of it is fdatasynced in its
 * own files. 0 = never. Process-wide. @thread loop
 */
void sl_part_set_idle_unload_ms(int64_t idle_ms);
/* Unload p now if it can be (everything synced, not failed, no damaged
 * range to remember); 1 when it was. @thread loop */
int sl_part_unload(sl_part *p, int64_t now_ms);
/* Partitions unloaded so far (process-wide). */
uint64_t sl_part_unloads(void);
/* Descriptors the cache holds now, its bound, files opened and evicted
 * since start (any may be NULL). @thread any */
void sl_part_open_files(size_t *open, size_t *max, uint64_t *opens,
                        uint64_t *evictions);

/*
 * A range of whole batches in one segment file, for zero-copy sending.
 * fd is a dup() the caller owns: close it, or hand it to evbuffer_add_file
 * (which takes ownership and closes it, also on error).
 */
typedef struct sl_part_slice {
    int fd; /* -1 when len == 0 */
    uint64_t file_pos;
    size_t len;
    int64_t first_offset; /* base offset of the first batch in the slice */
    int64_t next_offset;  /* offset after the last batch in the slice */
} sl_part_slice;

/*
 * Whole batches from the one containing `offset`, up to max_bytes (but at
 * least one whole batch, even if larger), only below `upto` (pass
 * sl_part_end_offset or a high watermark), within one segment.
 * Returns SL_ERR_OFFSET_OUT_OF_RANGE when offset < start or > end; len = 0
 * when offset >= upto. @thread loop
 */
sl_err sl_part_read(sl_part *p, int64_t offset, size_t max_bytes, int64_t upto,
                    sl_part_slice *out);

/* Like sl_part_read but appends the bytes to `out` with pread. */
sl_err sl_part_read_buf(sl_part *p, int64_t offset, size_t max_bytes,
                        int64_t upto, sl_wb *out, int64_t *next_offset);

/*
 * Per-record iteration (queue delivery, compaction, DLQ): yields records with
 * offset >= start, in order, across batches and segments. At the end of the
 * log sl_part_iter_next returns 0; a later call continues if more was
 * appended. The iterator holds its own buffer; memory is bounded by the
 * largest batch. @thread loop
 */
typedef struct sl_part_iter sl_part_iter;
sl_err sl_part_iter_new(sl_part *p, int64_t start, sl_part_iter **out);
/* 1 = *rec filled (pointers valid until the next call), 0 = end for now.
 * *err (may be NULL) is set on a read failure (then returns 0). A damaged
 * batch (CRC mismatch, bad header, records that do not parse or lie about
 * their offsets) is skipped, logged and remembered (sl_part_bad_ranges):
 * one bad batch must not stop every record after it. */
int sl_part_iter_next(sl_part_iter *it, sl_record *rec, sl_err *err);
/* Reposition. */
sl_err sl_part_iter_seek(sl_part_iter *it, int64_t offset);
void sl_part_iter_free(sl_part_iter *it);

/* First offset whose record timestamp >= ts_ms (by the time index, then a
 * scan); the end offset if none. @thread loop */
sl_err sl_part_offset_for_time(sl_part *p, int64_t ts_ms, int64_t *out);

/*
 * fdatasync everything appended so far (segments rolled since the last sync
 * too), then publish the new durable offset. On failure the partition is
 * marked failed: later appends return SL_ERR_STORAGE (fsync failures cannot
 * be retried safely). @thread flusher (or loop when no flusher runs)
 */
sl_err sl_part_sync(sl_part *p);
/* Appended but not yet synced? @thread any */
int sl_part_dirty(const sl_part *p);
/* 1 once an fdatasync (or cutting back a failed write) failed: the
 * partition refuses appends (SL_ERR_STORAGE) and its durable offset no
 * longer moves; reads still work. Cleared only by reopening. @thread any */
int sl_part_failed(const sl_part *p);

/* Queue groups: no segment holding offsets >= low_water is deleted by
 * retention (-1 = no queue group holds anything). @thread loop */
void sl_part_set_low_water(sl_part *p, int64_t low_water);
/* The low-water mark last set (-1: none). @thread loop */
int64_t sl_part_low_water(const sl_part *p);
/*
 * A copy kept only for the queue groups reading it (a cluster observer's,
 * broker/observer.c): the active segment is rolled once it holds
 * roll_bytes or more (0: never), then every segment that ends at or below
 * `below` (never the active one) is deleted, as retention deletes them.
 * *deleted and *bytes (may be NULL) = segments and bytes removed. @thread loop
 */
sl_err sl_part_trim_below(sl_part *p, int64_t below, uint64_t roll_bytes,
                          int64_t now_ms, int *deleted, uint64_t *bytes);

/* Roll by age, delete by time/size retention (respecting the low-water
 * mark), compact when cfg->compact. Call periodically. *deleted (may be
 * NULL) = segments removed. @thread loop */
sl_err sl_part_maintain(sl_part *p, int64_t now_ms, int *deleted);
/* Force a compaction pass now (tests, admin). @thread loop */
sl_err sl_part_compact(sl_part *p, int64_t now_ms);

/*
 * Damaged data. Recovery keeps batches that fail their checks in the middle
 * of a log (valid batches after them prove it is not a torn write: see
 * segment.c) and readers skip them; both remember the ranges here so they
 * can be reported (`sluice topic describe`, the log). Copies at most max
 * ranges (the first SL_PART_BAD_MAX found since open) into out; *total (may
 * be NULL) = every range found since open. @thread loop
 */
#define SL_PART_BAD_MAX 16
typedef struct sl_part_bad {
    int64_t first, last; /* offsets the damaged bytes held (inclusive) */
    char why[64];
} sl_part_bad;
size_t sl_part_bad_ranges(const sl_part *p, sl_part_bad *out, size_t max,
                          uint64_t *total);

/* Delete the partition's directory and free p (topic deletion). */
sl_err sl_part_destroy(sl_part *p);

#endif
