/*
 * segment.h - private to storage/: one segment of a partition log
 * (struct sl_seg), the segment functions (segment.c, segment_index.c,
 * segment_recover.c) and the open-file cache of their .log descriptors
 * (fdcache.c). Nothing outside storage/ includes this file.
 */
#ifndef SL_SEGMENT_H
#define SL_SEGMENT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/batch.h"
#include "protocol/err.h"

#define SL_IDX_ENTRY 8   /* u32 rel, u32 pos */
#define SL_TIDX_ENTRY 12 /* i64 ts, u32 rel */
/* Header bytes needed to walk batches (base, length, ..., last delta). */
#define SL_WALK_HDR 23
#define SL_SCRATCH_SIZE (64u * 1024)
#define SL_SEG_HOLES_MAX 8

typedef struct sl_idx_ent {
    uint32_t rel; /* offset - segment base */
    uint32_t pos; /* file position of the batch with that base offset */
} sl_idx_ent;

typedef struct sl_tidx_ent {
    int64_t ts;   /* max timestamp of every batch up to and incl. rel */
    uint32_t rel; /* base offset (relative) of the batch holding ts */
} sl_tidx_ent;

/*
 * One segment: NNNNNNNNNNNNNNNNNNNN.log/.index/.timeindex.
 * Fields marked (mu) are shared with the flusher and written under the
 * partition's mutex; the rest belong to the loop thread.
 */
typedef struct sl_seg {
    int64_t base; /* first offset, the file name */
    int64_t end;  /* offset after its last batch (base if empty) */
    char *dir;    /* the partition directory (a copy) */
    int fd;       /* .log; -1 while closed: use sl_seg_fd() (fdcache.c) */
    int idx_fd, tidx_fd;    /* -1 except while the index files are read or
                               written (sl_seg_idx_close) */
    uint64_t size;          /* (mu) bytes of whole batches in .log */
    uint64_t synced_size;   /* (mu) .log bytes durable: covered by an
                               fdatasync of the file or of the journal */
    uint64_t file_synced;   /* (mu) .log bytes covered by an fdatasync of
                               the file itself (<= synced_size) */
    uint64_t ino, igen;     /* (mu) identity of the .log (journal.c) */
    uint64_t alloc_end;     /* loop: .log file size when preallocated past
                               `size` (fallocate), else <= size */
    uint64_t prealloc_step; /* loop: the last extension (0 = none yet) */
    uint64_t zero_end;      /* loop: the preallocated space before this
                               holds written zeros (sl_seg_zero_ahead) */
    int idx_dirty;          /* (mu) index files need one sync (rolled) */
    int64_t max_ts;         /* max batch max_timestamp; INT64_MIN if none */
    int64_t max_ts_off;     /* base offset of the batch holding max_ts */
    int64_t created_ms;     /* for segment_ms rolling; -1 = at 1st append */
    uint64_t idx_bytes;     /* bytes appended since the last index entry */
    sl_idx_ent *idx;
    size_t nidx, cidx;
    sl_tidx_ent *tidx;
    size_t ntidx, ctidx;
    size_t idx_disk, tidx_disk; /* entries written to the index files */
    /* Damaged ranges recovery kept (sl_seg_open); nholes counts them all,
     * the first SL_SEG_HOLES_MAX are listed. */
    struct {
        int64_t first, last;
        uint64_t pos;
    } holes[SL_SEG_HOLES_MAX];
    size_t nholes;
    /* Open-file cache (fdcache.c): the LRU links (fdcache's mutex) and
     * the mutex of the partition whose array holds the segment (NULL
     * before it is pushed): fd changes under it. */
    struct sl_seg *lru_prev, *lru_next;
    int in_lru;
    pthread_mutex_t *pmu;
} sl_seg;

/* ---- fdcache.c: the bounded LRU of open .log descriptors ------------- */

/* The bound is never below this (an operation may work on two segments
 * at once) and defaults to half of RLIMIT_NOFILE. */
#define SL_FDC_MIN 8
#define SL_FDC_DEFAULT 1024
/* s's .log descriptor, opened now if it was closed (evicted); moves s to
 * the front of the LRU and closes the least recently used ones beyond the
 * bound. -1 with errno when the open fails (logged). Valid until the next
 * sl_seg_fd of another segment. @thread loop, no partition mutex held */
int sl_seg_fd(sl_seg *s);
/* s->fd was just opened by segment.c: count it, add s to the LRU, evict.
 * @thread loop, no partition mutex held */
void sl_seg__fd_opened(sl_seg *s);
/* Replace s->fd (closing the old one) by fd, keeping the LRU right; never
 * evicts, so it may run under the partition mutex (compaction). */
void sl_seg__fd_replace(sl_seg *s, int fd);
/* Close s->fd and drop s from the LRU (s is no longer shared). */
void sl_seg__fd_forget(sl_seg *s);

/* ---- segment.c, segment_index.c, segment_recover.c -------------------- */

/* "DIR/NNNNNNNNNNNNNNNNNNNN.ext" into buf (>= PATH_MAX). */
void sl_seg_path(const char *dir, int64_t base, const char *ext, char *buf,
                 size_t n);
/* Create a new empty segment (truncating leftovers of that name). */
sl_err sl_seg_create(const char *dir, int64_t base, int64_t now_ms,
                     sl_seg **out);
/*
 * Open an existing segment and recover it (segment_recover.c).
 * is_last: the active segment (tail scan with CRC from its last index
 * entry). next_base: base of the following segment (INT64_MAX if last).
 * later_valid: a later segment starts with an intact batch (so a bad batch
 * at the end of this one is corruption, not a torn tail).
 * *torn = 1 when a torn tail was cut off. A damaged batch with intact data
 * after it is kept and listed in s->holes.
 */
sl_err sl_seg_open(const char *dir, int64_t base, int is_last,
                   int64_t next_base, uint32_t index_interval, int later_valid,
                   sl_seg **out, int *torn);
void sl_seg_free(sl_seg *s);
/* Fill s->ino/igen from s->fd (after open or after compaction replaced
 * the file). @thread loop */
void sl_seg_ident(sl_seg *s);
/* Close the index files (they are opened when needed). @thread loop */
void sl_seg_idx_close(sl_seg *s);
/* Unlink the three files of segment base in dir. */
void sl_seg_unlink(const char *dir, int64_t base);
/* Append a verified batch (h = its header) at s->size: .log, then index
 * entries. On failure everything is cut back; *fatal = 1 if cutting back
 * failed too. Does not touch s->size (the caller publishes it under mu). */
sl_err sl_seg_append(sl_seg *s, const uint8_t *batch, size_t len,
                     const sl_batch_hdr *h, uint32_t index_interval,
                     int *fatal);
/* Extend the preallocation only when the bytes not yet synced (about one
 * round) stay below this: the latency-bound regime it is for. */
#define SL_PREALLOC_MAX_ROUND (64u * 1024u)
/* The first extension of a segment; each later one doubles. */
#define SL_PREALLOC_FIRST (64u * 1024u)
/* Make the .log file at least `need` bytes long with fallocate, `step`
 * bytes ahead, never past max (unless need is). Best effort. @thread loop */
void sl_seg_prealloc(sl_seg *s, uint64_t need, uint64_t step, uint64_t max);
/* Preallocated space is zero-filled this far ahead of the appends (never
 * past alloc_end, so a slow partition's small preallocation bounds it;
 * segment.c says why 1 MiB). */
#define SL_PREALLOC_ZERO_STEP (1024u * 1024u)
/* When an append that ends at `need` goes past the written zeros, write
 * zeros over the preallocated space after it, SL_PREALLOC_ZERO_STEP ahead
 * (never past alloc_end). Best effort. @thread loop */
void sl_seg_zero_ahead(sl_seg *s, uint64_t need);
/* Write index entries not yet in the index files: all when force, else
 * only once SL_IDX_BATCH are pending (one pwrite per file). The files are
 * never fsynced on their own and recovery rescans the log after their last
 * entry, so a lagging file only lengthens that scan. @thread loop */
#define SL_IDX_BATCH 64
sl_err sl_seg_write_index(sl_seg *s, int force);
/* 1 when sl_seg_write_index(s, 0) would write: SL_IDX_BATCH entries of
 * either index are pending. */
int sl_seg_index_due(const sl_seg *s);
/* Cut preallocated space after s->size off the .log file. @thread loop */
sl_err sl_seg_trim(sl_seg *s);
/* File position to start scanning for `offset` (index lookup). */
uint64_t sl_seg_lookup(const sl_seg *s, int64_t offset);
/* Position of the first batch whose last offset >= offset (s->size if
 * none), walking headers from the index position with the scratch
 * buffer. */
sl_err sl_seg_find(sl_seg *s, int64_t offset, uint8_t *scratch,
                   uint64_t *pos_out);
/*
 * Walks batch headers of a segment through a read-ahead window (scratch),
 * for sl_part_read and sl_seg_find: one pread per window, not per batch.
 */
typedef struct sl_walker {
    sl_seg *s;
    uint8_t *buf;
    size_t cap;
    uint64_t wpos; /* file position of buf[0] */
    size_t wlen;   /* valid bytes in buf */
} sl_walker;
void sl_walker_init(sl_walker *w, sl_seg *s, uint8_t *buf, size_t cap);
/* Header of the batch at pos: its base offset, total size, last offset.
 * SL_ERR_CORRUPT if it is not a sane header (offsets no batch can have
 * included: sl_batch_raw_offsets) or runs past s->size. */
sl_err sl_walker_hdr(sl_walker *w, uint64_t pos, int64_t *base, uint32_t *size,
                     int64_t *last);
/* After a bad batch at pos (CRC mismatch, damaged header or records):
 * the position of the next intact batch (whole, CRC right, base offset >=
 * min_base, last offset below next_base and within UINT32_MAX of the
 * segment's base: exactly what recovery's scan accepts, so recovery never
 * jumps to a batch it then refuses), scanning forward byte by byte (the bad
 * batch's own length is not trusted). *base_out = its base offset; s->size
 * and -1 when none follows in this segment. Reads the file (pread);
 * memory: one batch. */
uint64_t sl_seg_next_good(sl_seg *s, uint64_t pos, int64_t min_base,
                          int64_t next_base, int64_t *base_out);
/* Rebuild indexes from the .log (full header scan, no truncation) and
 * rewrite the index files. */
sl_err sl_seg_reindex(sl_seg *s, uint32_t index_interval);

/* ---- segment*.c among themselves ------------------------------------ */

/* segment.c: a new sl_seg for base in dir, no file open. NULL if out of
 * memory. */
sl_seg *sl_seg__alloc(const char *dir, int64_t base);
/* segment.c: open .log, .index, .timeindex (log_flags: O_CREAT|O_TRUNC
 * for a new segment, 0 for an existing one); logs and returns the error. */
sl_err sl_seg__open_files(const char *dir, sl_seg *s, int log_flags);
/* segment.c: open the index files if they are closed: 1 when it opened
 * them (release with sl_seg_idx_close), 0 when they were open, -1 on
 * error (errno). */
int sl_seg__idx_acquire(sl_seg *s);
/* segment_index.c: rewrite both index files from memory (recovery,
 * compaction). */
sl_err sl_seg__write_indexes(sl_seg *s);
/* segment_index.c: load .index (checked against the .log size fsize) and
 * .timeindex into memory; 0 = plausible, -1 = must be rebuilt. */
int sl_seg__load_index(sl_seg *s, uint64_t fsize);
int sl_seg__load_tindex(sl_seg *s);
/* segment_index.c: does the batch header at pos carry base offset want? */
int sl_seg__hdr_matches(sl_seg *s, uint64_t pos, int64_t want, uint64_t fsize);
/* segment_index.c: index bookkeeping shared by append and recovery's
 * scan: before adding the batch at pos (header h), add index and time
 * entries if due. 1 when entries were added to memory. */
int sl_seg__index_step(sl_seg *s, uint64_t pos, const sl_batch_hdr *h,
                       uint32_t interval, int allow_entry);

#endif
