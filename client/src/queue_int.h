/*
 * queue_int.h - inside sluice_queue_consumer (queue.c, queue_settle.c):
 * the consumer's structure and the functions its files share. Not
 * installed; the essay is at the top of queue.c.
 */
#ifndef SL_CLIENT_QUEUE_INT_H
#define SL_CLIENT_QUEUE_INT_H

#include <pthread.h>

#include "client/src/ackr.h"
#include "client/src/conn.h"
#include "client/src/coord.h"
#include "client/src/cursor.h"
#include "client/src/internal.h"
#include "protocol/api.h"

#define ADAPT_SLOW_MS 100   /* half a window takes longer: shrink */
#define UNKNOWN_RETRY_MS 50 /* first wait for a topic that does not exist */

typedef struct qbuf {
    struct qbuf *next;
    int32_t partition;
    sl_qentry *entries; /* malloc'd copy */
    uint32_t nentries, ei;
    sl_cursor cu;
} qbuf;

typedef struct hitem {
    int32_t partition;
    int64_t offset;
    int live;
} hitem;

typedef struct pending {
    uint32_t corr;
    uint16_t api;
    size_t items;
} pending;

struct sluice_queue_consumer {
    pthread_mutex_t mu;
    sl_cl_cfg cfg;
    sl_cl_conn conn;
    sl_arena arena;
    sl_cl_coord coord;  /* the group's node (cluster) */
    int64_t down_since; /* failures that may pass began, 0 = none */
    char *topic;
    char *group;
    char consumer_id[160];
    sl_ackr ackr;
    qbuf *bhead, *btail;
    uint32_t acq_corr; /* acquire in flight, 0 = none */
    pending *pend;     /* settlement replies awaited, FIFO */
    size_t npend, pend_cap;
    sl_err acq_err; /* top-level acquire error, returned by poll */
    int moved;      /* NOT_COORDINATOR: reconnect to the coordinator */
    char acq_msg[1024];
    sl_err first_err;
    char first_err_msg[256];
    size_t nfailed;
    hitem *held_v; /* acquired, not settled by the caller: [hstart, hn) */
    size_t hstart, hn, hcap;
    size_t held; /* live entries */
    /* window (adaptive unless cfg.queue_credits > 0) */
    int64_t win;
    int64_t acq_want;    /* records asked by the acquire in flight */
    int last_full;       /* the last reply had all it asked for */
    uint64_t handed;     /* records handed to the caller, ever */
    uint64_t handed_at;  /* ... when the last acquire reply came */
    int64_t reply_ms;    /* when the last acquire reply came */
    int unknown_wait_ms; /* waiting for the topic to be created */
};

/* The connection dropped: everything in flight is lost, the broker has
 * released what we held. */
void sl_qc_on_disconnect(sluice_queue_consumer *q, sl_err rc);

/* The caller settled (part, off): forget it. Settlements come mostly in
 * delivery order, so the match is usually at the front. */
void sl_qc_held_remove(sluice_queue_consumer *q, int32_t part, int64_t off);

/* One reply frame: an acquire's records or a settlement's result. */
void sl_qc_handle_frame(sluice_queue_consumer *q, sl_chunk *fr);

/* Read replies until the condition is met or deadline. */
sl_err sl_qc_pump(sluice_queue_consumer *q, int64_t deadline);

/* Connect (to the group's coordinator in a cluster) if not connected. */
sl_err sl_qc_ensure_conn(sluice_queue_consumer *q);

/* Encode and write the pending settlements (no waiting for replies). */
sl_err sl_qc_send_settlements(sluice_queue_consumer *q);

/* Pending settlements that trigger a send: ack.batch.records, or with the
 * adaptive window half of it when that is more (a window of 16384 records
 * in 64 settlement requests cost the broker more than the records). */
size_t sl_qc_ack_batch(const sluice_queue_consumer *q);

/* Wait until every settlement reply is in. */
sl_err sl_qc_wait_settled(sluice_queue_consumer *q, int64_t deadline);

#endif
