/*
 * pl_vfs.h - SQLite VFS shim of the power-loss fault layer (pl_vfs.c,
 * storage/powerloss.h). Test mode only.
 */
#ifndef SL_PL_VFS_H
#define SL_PL_VFS_H

/* Register the shim as SQLite's default VFS, wrapping the current default.
 * Call before any database is opened. SQLITE_OK or an SQLite error code. */
int sl_pl_vfs_register(void);

#endif
