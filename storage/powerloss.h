/*
 * powerloss.h - a power-loss fault layer for tests: at a chosen moment,
 * throw away every write that no fsync covered, then die.
 *
 * NEVER active in normal operation: sluiced installs it only when the
 * environment variable SLUICE_POWERLOSS is set (tests/crash/powerloss.py,
 * scripts/powerloss.sh), and says so loudly in its log.
 *
 * Model (after SQLite's test6.c crash tests). Every file written through
 * the storage seam (sl_fs, fsutil.h) or through the SQLite VFS shim
 * (groups/pl_vfs.c, for groups.db and meta.db) is tracked:
 *   - its durable size: the size at its last fsync/fdatasync (or when first
 *     seen: what is on disk when the process starts is durable);
 *   - an undo log: the old bytes of every write or truncate since the last
 *     sync that touched bytes below the durable size;
 *   - for files created through sl_fs: whether their directory was fsynced
 *     since (POSIX does not promise a new name survives without it).
 * Each write, truncate and sync is one operation. When the count reaches
 * the chosen cut point the layer stops every other I/O thread at its next
 * operation, waits for the ones in flight, parks every other thread of the
 * process (no more replies from files it is about to rewrite), resets
 * every TCP connection, and then for every tracked file:
 * removes it if its name was never made durable; else undoes the overwrites
 * (newest first) and truncates it to its durable size (with tear=1, half of
 * the time a random prefix of the unsynced tail survives instead: a torn
 * write). It writes the result into new pages (truncate to 0, write
 * back), never into the pages of the file: replies already sent by
 * sendfile still point at them (see powerloss.c). Then it logs one line and
 * _exits with SL_POWERLOSS_EXIT, as the machine would have stopped. The page
 * cache holds what is on disk now, so a broker restarted on the directory sees
 * what a power loss would leave.
 *
 * Not modelled: renames and unlinks (not part of the seam; their durable
 * recipe fsyncs the directory), directory entries of SQLite's own files,
 * reordering of two fsynced writes (an fsync is a barrier here, as it is on
 * a disk that honours flushes).
 */
#ifndef SL_POWERLOSS_H
#define SL_POWERLOSS_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "protocol/err.h"

/* The exit status of a process the layer stopped. */
#define SL_POWERLOSS_EXIT 86
/* With signal=1: this signal cuts at the next operation. */
#define SL_POWERLOSS_ARM_SIG (SIGRTMIN + 5)

/*
 * Arm the layer and point sl_fs at it. spec: comma-separated key=value:
 *   at=N     cut at the Nth operation (N >= 1; required unless signal=1)
 *   seed=S   random seed for torn tails (default 1)
 *   tear=0|1 keep a random prefix of unsynced tails half of the time
 *            (default 1)
 *   verbose=0|1  one log line per file at the cut
 *   hold=MS  stay (stopped) MS milliseconds after the cut before exiting:
 *            lets a test check that nothing answers meanwhile
 *   stop=0|1 park the other threads and reset connections first (default
 *            1; 0 is the old behaviour, kept to show what the stop fixes)
 *   inplace=0|1  undo and truncate in the file's own pages at the cut
 *            (default 0: each changed file is read, truncated to 0 and
 *            written back; 1 is the old behaviour, kept to show why)
 *   signal=1 SL_POWERLOSS_ARM_SIG (SIGRTMIN+5) moves the cut to the next
 *            operation, whatever its number: a test chooses the moment
 *            (at= may then be left out)
 * SL_OK or SL_ERR_INVALID_ARG (err names the bad part). Call once, before
 * any file is opened. @thread any (before threads start)
 */
sl_err sl_powerloss_install(const char *spec, char *err, size_t errlen);
/* 1 once installed. */
int sl_powerloss_active(void);

/* For other writers (the SQLite shim). Every operation is bracketed by
 * begin/end; begin may never return (the cut happened). `path` is the
 * absolute path of the file. @thread any */
void sl_pl_begin(void);
void sl_pl_end(void);
void sl_pl_note_write(const char *path, off_t off, size_t n);
void sl_pl_note_truncate(const char *path, off_t len);
void sl_pl_note_sync(const char *path);

#endif
