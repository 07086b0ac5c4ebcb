/*
 * offset_files.h - list the files of a directory named by an offset:
 * "NNNNNNNNNNNNNNNNNNNN<ext>" (20 decimal digits, zero-padded, then the
 * extension with its dot), as segments (.log) and producer snapshots
 * (.producers) are named. One readdir, sorted ascending.
 */
#ifndef SL_OFFSET_FILES_H
#define SL_OFFSET_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/err.h"

/* The digits of the offset in a name. */
#define SL_OFFSET_NAME_DIGITS 20

/* The offset in `name` when it is exactly "<20 digits><ext>", else -1. */
int64_t sl_offset_name(const char *name, const char *ext);

/* Called for each entry of the directory that is not "<20 digits><ext>"
 * (".", ".." included), so a caller can clean up in the same pass. */
typedef void (*sl_offset_other_fn)(const char *dir, const char *name,
                                   void *arg);

/*
 * The offsets of the files "<20 digits><ext>" in dir, sorted ascending,
 * in *out (malloc'ed, NULL when none; free it) and *nout. other may be
 * NULL. SL_OK, SL_ERR_NOMEM, or SL_ESYS(errno) when dir cannot be read.
 * @thread any
 */
sl_err sl_offset_files(const char *dir, const char *ext,
                       sl_offset_other_fn other, void *arg, int64_t **out,
                       size_t *nout);

#endif
