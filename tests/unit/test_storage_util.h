/* Helpers shared by the storage unit tests. */
#ifndef SL_TEST_STORAGE_UTIL_H
#define SL_TEST_STORAGE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "storage/partition.h"

/* A fresh directory under $TMPDIR (or /tmp); caller frees with tu_rmrf. */
char *tu_tmpdir(void);
/* rm -rf dir, then free(dir). */
void tu_rmrf(char *dir);
/* A batch of n records, timestamps ts, ts+1, ...; keys "key-<key0+i>"
 * (key0 < 0: null keys); values of vlen bytes "val-<key0+i>..." padded
 * with 'x' (vlen == (size_t)-1: null values, tombstones). malloc'ed;
 * caller frees. */
uint8_t *tu_batch(int n, int64_t ts, int key0, size_t vlen, size_t *len);
/* Append a tu_batch; asserts success; returns the base offset. */
int64_t tu_append(sl_part *p, int n, int64_t ts, int key0, size_t vlen);
/* tu_append with sl_part_append_ex's flags (SL_PART_APPEND_DEFER...). */
int64_t tu_append_ex(sl_part *p, int n, int64_t ts, int key0, size_t vlen,
                     unsigned flags);
/* Small config: tiny segments and index interval, no time-based roll or
 * retention. */
void tu_small_cfg(sl_part_cfg *cfg, uint64_t segment_bytes);
/* Number of files in dir ending with ext. */
int tu_count_files(const char *dir, const char *ext);
/* Size of a file; -1 if missing. */
long long tu_file_size(const char *path);
/* Read/write whole files (malloc'ed). */
uint8_t *tu_read_file(const char *path, size_t *len);
void tu_write_file(const char *path, const void *p, size_t len);
/* Path of segment base with extension ext (static buffer per call slot). */
const char *tu_seg_path(const char *dir, int64_t base, const char *ext);
/* Iterate all records from start; returns count; checks offsets strictly
 * increase. */
int64_t tu_count_records(sl_part *p, int64_t start);

#endif
