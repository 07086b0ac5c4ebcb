/*
 * journal.h - the shared write-ahead journal of the flusher.
 *
 * One file for every partition: a flusher round with many dirty
 * partitions copies their new bytes into the journal and fdatasyncs that
 * one file instead of one segment file per partition; the segment files
 * are written behind it and fdatasynced at a checkpoint, after which the
 * journal file is deleted. On start, sl_journal_open replays whatever
 * journal files a crash left into the segment files they cover, BEFORE
 * the partitions are opened (and recovered). Format, rules and the
 * measurements behind the choice: the essay at the top of journal.c and
 * docs/storage.md section 2.
 *
 * Threads: sl_journal_open and sl_journal_free on the loop thread (start
 * and stop); everything else on the flusher thread only.
 */
#ifndef SL_JOURNAL_H
#define SL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"

typedef struct sl_journal sl_journal;

/*
 * Replay the journal files in DATA/journal (written by a broker that did
 * not stop cleanly) into the segment files they name, fdatasync what was
 * written, delete them, and start a new journal file. file_bytes: rotate
 * (checkpoint) once the current file is this long. *replayed (may be
 * NULL) = number of entries whose bytes were missing from their segment
 * and were written back. *out written on success. @thread loop, before
 * any partition under data_dir is opened
 */
sl_err sl_journal_open(const char *data_dir, uint64_t file_bytes,
                       sl_journal **out, uint64_t *replayed);
/* Close (the flusher deleted the file if its last checkpoint covered
 * everything: a clean stop leaves no journal). Accepts NULL.
 * @thread loop, after the flusher using it was freed */
void sl_journal_free(sl_journal *j);

/* Entries (rounds' ranges) written and journal fdatasyncs so far. */
uint64_t sl_journal_entries(const sl_journal *j);
uint64_t sl_journal_syncs(const sl_journal *j);

/* ---- flusher side (storage/ only) ----------------------------------- */

/*
 * Copy [from, to) of segment file fd (partition directory dir, segment
 * base, inode ino/igen) into the journal's buffer, writing the buffer to
 * the file when it fills. Not durable before sl_journal__commit.
 * @thread flusher
 */
sl_err sl_journal__add(sl_journal *j, const char *dir, int64_t base,
                       uint64_t ino, uint64_t igen, int fd, uint64_t from,
                       uint64_t to);
/* The same in three steps, for a caller that fills the data itself (the
 * flusher reads it under the partition's mutex, without dup'ing the fd):
 * sl_journal__entry reserves an entry for n <= 1 MiB bytes at pos and
 * returns where to put them (NULL: too large or the journal failed;
 * nothing reserved); then exactly one of sl_journal__seal (checksum and
 * keep it) or sl_journal__abort. @thread flusher */
uint8_t *sl_journal__entry(sl_journal *j, const char *dir, int64_t base,
                           uint64_t ino, uint64_t igen, uint64_t pos, size_t n);
void sl_journal__seal(sl_journal *j);
void sl_journal__abort(sl_journal *j);
/* Write what is buffered and fdatasync the file: every range added since
 * the last commit is durable after SL_OK. A failure is permanent (the
 * journal refuses further use; the caller falls back to fdatasync of the
 * segments, which still hold the bytes). @thread flusher */
sl_err sl_journal__commit(sl_journal *j);
/* A checkpoint fdatasyncs every partition its journal file covered, so a
 * file that covers many partitions is let grow past file_bytes: to
 * nparts * SL_JR_BYTES_PER_PART, at most SL_JR_STRETCH * file_bytes. One
 * fdatasync per 32 KiB journaled at most: a producer spread over 10,000
 * partitions paid 10,000 device flushes per 64 MiB file, more broker CPU
 * than the records themselves (docs/storage.md 2.1, docs/benchmarks.md
 * session 17). */
#define SL_JR_BYTES_PER_PART (32u * 1024u)
#define SL_JR_STRETCH 8u
/* 1 once the current file, covering nparts partitions, is full by the
 * rule above: time to rotate. @thread flusher */
int sl_journal__full(const sl_journal *j, size_t nparts);
/* Start a new file (later rounds go there); *old_seq = the previous one,
 * to delete with sl_journal__drop once a checkpoint fdatasynced every
 * segment file written while it was current (rule 3). Only between
 * rounds. @thread flusher */
sl_err sl_journal__rotate(sl_journal *j, uint64_t *old_seq);
void sl_journal__drop(sl_journal *j, uint64_t seq);
/* The sequence number of the current file. */
uint64_t sl_journal__seq(const sl_journal *j);
/* Close and delete the current file: everything it covers was
 * checkpointed (the flusher's last act). No-op after a failure.
 * @thread flusher */
void sl_journal__retire(sl_journal *j);
/* syncfs of the data directory's file system: every segment file (and
 * directory) the journal covers is durable after SL_OK, as after a
 * checkpoint of each (the flusher's last checkpoint when it covers many
 * partitions). A failure (a writeback error, Linux >= 5.8) keeps the
 * journal for the next start to replay. @thread flusher */
sl_err sl_journal__syncfs(sl_journal *j);
/* Inode generation of fd (FS_IOC_GETVERSION), 0 when unsupported: with
 * the inode number it tells a segment file from a later one of the same
 * name. @thread any */
uint64_t sl_journal__igen(int fd);
/* 1 after a failed write or fdatasync. @thread any */
int sl_journal__failed(const sl_journal *j);

#endif
