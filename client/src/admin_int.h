/*
 * admin_int.h - what admin.c and admin_groups.c share (not installed;
 * not for use outside client/src/admin*.c): the sluice_admin handle, the
 * start of every call (BEGIN) and the round trip.
 */
#ifndef SL_CLIENT_ADMIN_INT_H
#define SL_CLIENT_ADMIN_INT_H

#include <pthread.h>

#include "client/src/conn.h"
#include "client/src/internal.h"
#include "protocol/api_common.h"

struct sluice_admin {
    pthread_mutex_t mu;
    sl_cl_cfg cfg;
    sl_cl_conn conn;
    sl_arena arena;
};

#define BEGIN(a)                                                               \
    sl_cl_clear_err();                                                         \
    pthread_mutex_lock(&(a)->mu);                                              \
    rc = sl_cl_conn_ensure(&(a)->conn);                                        \
    if (rc != SL_OK)                                                           \
        goto out;                                                              \
    sl_arena_reset(&(a)->arena);                                               \
    corr = sl_cl_conn_corr(&(a)->conn)

/* Send the request already encoded with corr, wait for the reply and check
 * its top-level error. On SL_OK *fr holds the reply (caller unrefs). */
sl_err sl_cl_admin_roundtrip(sluice_admin *a, uint32_t corr, const char *what,
                             sl_chunk **fr, const uint8_t **body, size_t *len);
/* A NUL-terminated copy of s (free), NULL when s has none. */
char *sl_cl_admin_dupstr(sl_str s);

#endif
