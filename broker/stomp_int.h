/*
 * stomp_int.h - what the files of the STOMP adapter share (not for use
 * outside broker/stomp*.c).
 *
 * The adapter is split by concern; each file opens with its own essay:
 *
 *   stomp.c          the session's connection ops (conn.h), frame
 *                    dispatch, owed replies (RECEIPT/ERROR), the module
 *   stomp_session.c  CONNECT (version, login, heart-beats), DISCONNECT
 *   stomp_send.c     SEND batching, transactions (BEGIN/COMMIT/ABORT)
 *   stomp_sub.c      SUBSCRIBE/UNSUBSCRIBE, ACK/NACK, temp queues
 *   stomp_deliver.c  MESSAGE delivery: queue consumers, topic readers
 *   stomp_dest.c     destination names and wildcards (pure)
 *   stomp_vhost.c    virtual hosts: CONNECT's host, names in a vhost
 *   stomp_ack.c      ack modes, message ids, the unacked list (pure)
 *   stomp_selector.c JMS selectors (pure)
 *   stomp_frame.c    the frame parser and encoder (pure)
 *   stomp_auth.c     the users file (checks: broker/auth.c)
 *   relay*.c         cluster: /queue subscriptions served by the node
 *                    that coordinates their group (docs/cluster.md 5.1)
 *
 * The pure files open no socket and touch no broker state, so
 * tests/unit/test_stomp_sub.c tests them without a running broker.
 * @thread loop
 */
#ifndef SL_STOMP_INT_H
#define SL_STOMP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "broker/config.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "broker/ops_groups.h"
#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/stomp_auth.h"
#include "broker/stomp_frame.h"
#include "broker/stomp_selector.h"
#include "groups/groups.h"
#include "protocol/batch.h"
#include "protocol/log.h"
#include "protocol/parse.h"

#define STOMP_SUBSYS "stomp"
/* Record header the queue groups read as a delivery delay (ms after the
 * record's timestamp); AMQ_SCHEDULED_DELAY is copied into it. */
#define HDR_DELAY_MS "delay-ms"
/* Record header the queue groups read as the message's time to live (ms
 * after its timestamp); RabbitMQ's `expiration` is copied into it. */
#define HDR_TTL_MS "ttl-ms"

/* ---- destinations (stomp_dest.c) ----------------------------------------- */

enum { DEST_QUEUE = 1, DEST_TOPIC = 2, DEST_TEMP = 3 };

typedef struct dest {
    int kind;
    char name[SL_TOPIC_NAME_MAX + 1]; /* topic (or pattern) */
    /* the queue group when it is not name (a virtual topic's consumer
     * queue), else "" */
    char group[SL_TOPIC_NAME_MAX + 1];
    const char *prefix; /* for wildcard deliveries */
    int wildcard;
    int literal;     /* a topic named as is ('*', '#', '>' are no wildcards) */
    const char *err; /* when refused: the ERROR's message header */
} dest;

#define STOMP_VHOST_MAX 64

/* Resolve a destination header; session names this connection's temp
 * queues. SL_OK or SL_ERR_INVALID_ARG with why. Pure: frame handlers
 * call stomp_dest_resolve (below), which adds the virtual host. */
sl_err stomp_dest_parse(const char *session, const char *s, dest *d, char *why,
                        size_t whylen);
/* Topic wildcard match, dot-separated words: '*' one word, '#' zero or
 * more words (RabbitMQ), '>' one or more words at the end (ActiveMQ). */
int stomp_wild_match(const char *pattern, const char *topic);
/* Is topic another session's temp queue ("stomp-tmp-S-NAME")? */
int stomp_tmp_foreign(const char *session, const char *topic);

/* ---- CONNECT's pure parts (stomp_session.c) ------------------------------ */

/* The highest version in accept-version av (SL_STOMP_V1x) this broker
 * speaks too; 0 when none. */
int stomp_accept_version(const char *av);
/* A heart-beat header "cx,cy" (ms, non-negative): 0 with *a = cx, *b = cy;
 * 0 leaving them alone when v is NULL; -1 when malformed. */
int stomp_hb_parse(const char *v, int64_t *a, int64_t *b);
/* The intervals agreed for the client's cx,cy: *out (we send) max(cy,
 * hmin) if cy > 0, *in (we expect) max(cx, hmin) if cx > 0, 0 = none;
 * none at all in STOMP 1.0. */
void stomp_hb_negotiate(int version, int64_t cx, int64_t cy, int64_t hmin,
                        int64_t *out, int64_t *in);

/* ---- virtual hosts (stomp_vhost.c) --------------------------------------- */

struct stomp_conn;
/* CONNECT's host: sets c->vhost; -1 (why) when vhosts are configured and
 * host is none of them (relay: another node's session, never refused). */
int stomp_vhost_connect(struct stomp_conn *c, const char *host, int relay,
                        char *why, size_t whylen);
/* stomp_dest_parse, then the names moved into c's vhost. */
sl_err stomp_dest_resolve(struct stomp_conn *c, const char *s, dest *d,
                          char *why, size_t whylen);
/* A name of c's (a durable subscription's) moved into its vhost in place
 * (cap bytes); SL_ERR_INVALID_ARG with why when it cannot be. */
sl_err stomp_vhost_name(struct stomp_conn *c, char *name, size_t cap, char *why,
                        size_t whylen);
/* 1 when c's wildcard subscriptions may see topic (not another vhost's). */
int stomp_vhost_sees(const struct stomp_conn *c, const char *topic);
/* topic as named in c's vhost (its prefix dropped). */
const char *stomp_vhost_local(const struct stomp_conn *c, const char *topic);

/* ---- ack modes, ids, the unacked list (stomp_ack.c) ---------------------- */

enum { ACK_AUTO = 0, ACK_CLIENT = 1, ACK_INDIVIDUAL = 2 };
extern const char *const stomp_ack_names[];

/* The ack header of SUBSCRIBE (NULL = auto): ACK_*, or -1. */
int stomp_ack_mode_parse(const char *v);

/* A boolean header: 1 for "true", 0 for "false" in any case (stomp.py
 * sends False/True, as RabbitMQ and ActiveMQ accept), dflt when absent
 * or anything else. */
int stomp_header_bool(const char *v, int dflt);

/* "topic/partition/offset[#subscription-id]": 0, or -1 when malformed.
 * *sub points into id after '#', or is NULL. */
int stomp_msgid_parse(const char *id, char *topic, size_t tl, int32_t *part,
                      int64_t *off, const char **sub);

typedef struct treader treader;

/* One delivery awaiting ACK/NACK. */
typedef struct pend {
    struct pend *next;
    treader *r;        /* topic reader it came from, or NULL (queue) */
    const char *topic; /* r->topic or the subscription's queue topic */
    int32_t partition;
    int64_t offset;
    uint64_t seq; /* a relayed delivery's number in its session, else 0 */
} pend;

/* A subscription's unacked deliveries, oldest first. */
typedef struct stomp_pendq {
    pend *head, *tail;
    size_t n;
} stomp_pendq;

/* Append one; -1 when out of memory (then the ack will not resolve and
 * the group's lock expiry returns the record). topic must outlive it. */
int stomp_pendq_push(stomp_pendq *q, treader *r, const char *topic,
                     int32_t partition, int64_t offset);
/* The entry for topic/partition/offset (and the one before it in
 * *prev), or NULL. */
pend *stomp_pendq_find(const stomp_pendq *q, const char *topic,
                       int32_t partition, int64_t offset, pend **prev);
/* Take what an ACK/NACK of ent settles out of q: ent alone, or, when
 * cumulative (ack:client), every entry up to and including it. Returns
 * the detached chain, oldest first (the caller settles and frees it). */
pend *stomp_pendq_take(stomp_pendq *q, pend *prev, pend *ent, int cumulative);
/* Free every entry. */
void stomp_pendq_clear(stomp_pendq *q);
/* Free one entry taken out of a queue (kept for the next push). */
void stomp_pend_free(pend *p);
/* Entries naming their topic by `from` name it by `to` (same text): the
 * string `from` is about to be freed. */
void stomp_pendq_retopic(stomp_pendq *q, const char *from, const char *to);

/* ---- state --------------------------------------------------------------- */

typedef struct stomp_srv stomp_srv;
typedef struct stomp_conn stomp_conn;
typedef struct stomp_sub stomp_sub;
typedef struct stomp_relay stomp_relay;

struct stomp_srv {
    sl_broker *b;
    const sl_config *cfg;
    sl_stomp_limits lim;
    sl_stomp_limits lim_prelogin; /* until CONNECT succeeded */
    stomp_conn *conns;            /* every STOMP session */
    treader *readers;             /* every topic reader */
    uint64_t next_session;
    struct event *relay_tick; /* cluster mode: relay.c's timer */
    /* this process's relay sessions: its epoch (above every earlier
     * process's of this node) and the number of the last one opened
     * (relay_tick.c) */
    int64_t relay_epoch;
    uint64_t relay_seq;
    /* a relay's MESSAGEs for its client, during a read (relay.c) */
    sl_wb relay_out;
    stomp_conn *relay_out_to;
};

struct treader {
    stomp_sub *sub;
    treader *sub_next;      /* in sub->readers */
    treader *gnext, *gprev; /* in srv->readers */
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t nparts;
    int64_t *cursor;     /* next offset per partition */
    sl_part_iter **it;   /* lazily opened per partition */
    sl_ops_watch *watch; /* wakes it when records become visible */
    int from_start;      /* a topic newer than its subscription (relay.c) */
};

struct stomp_sub {
    stomp_conn *c;
    stomp_sub *next;
    char *id;
    char *dest;    /* as the client wrote it */
    char *dprefix; /* "/topic/" or "/exchange/amq.topic/" for wildcards */
    int ack;       /* ACK_* */
    int64_t prefetch;
    int queue; /* 1 = queue group consumer, 0 = topic readers */
    int durable;
    int temp; /* temp queue: deleted with the connection */
    sl_qconsumer *qc;
    char *group, *qtopic;
    int64_t qcredit; /* credits last granted */
    treader *readers;
    char *pattern;    /* wildcard pattern, or NULL */
    sl_selector *sel; /* JMS selector, or NULL: topic readers skip what it
                         does not match, a queue group leaves it for other
                         consumers (stomp_qc_accept), a durable
                         subscription acks it unseen */
    stomp_pendq pq;
    /* cluster (relay.c): a /queue subscription is served where its group
     * is coordinated; homeable marks one that follows the coordinator */
    int homeable;
    /* a /topic subscription that relays partitions held elsewhere */
    int topic_relay;
    struct stomp_relay *relay; /* the node(s) serving it, or NULL */
    char **xh;                 /* SUBSCRIBE headers passed on: name, value */
    size_t nxh;
    /* deliveries made before the subscription moved (its coordinator
     * changed): their ACK/NACK settles nothing, the group delivers them
     * again */
    stomp_pendq stale;
    int home_warned;
};

typedef struct tx_op {
    struct tx_op *next;
    int cmd; /* SL_STOMP_SEND / ACK / NACK */
    /* SEND */
    char topic[SL_TOPIC_NAME_MAX + 1];
    int32_t partition;
    uint8_t *rec; /* flat copy: key, value, headers (see tx_add_send) */
    size_t key_len;
    int has_key;
    size_t body_len;
    sl_header *hdrs;
    size_t nhdrs;
    /* ACK / NACK */
    char *msgid, *subid;
    int requeue;
} tx_op;

typedef struct stomp_tx {
    struct stomp_tx *next;
    char *id;
    tx_op *ops, *ops_tail;
    size_t bytes;
} stomp_tx;

struct stomp_conn {
    stomp_srv *s;
    stomp_conn *next, *prev;
    sl_conn *conn;    /* the connection layer's (conn.h) */
    const char *peer; /* sl_conn_peer(conn) */
    sl_stomp_parser ps;
    int version;
    int connected;
    char session[32];
    char login[64];
    char client_id[128];
    int64_t hb_in, hb_out; /* ms; 0 = none */
    int64_t last_read, last_write;
    /* CONNECT waiting for its password check (stomp_auth.c) */
    sl_auth_job *auth_job; /* broker/auth.c */
    int64_t auth_cx, auth_cy;
    char *auth_receipt;
    struct event *hb_ev;
    stomp_sub *subs;
    stomp_tx *txs;
    /* the SEND batch being coalesced */
    sl_batch_builder bb;
    int bb_active;
    char bb_topic[SL_TOPIC_NAME_MAX + 1];
    int32_t bb_part;
    int bb_durable; /* some SEND in it was persistent */
    sl_wait *bb_w;  /* receipts waiting for it, or NULL */
    uint32_t rr;    /* round robin over partitions */
    sl_wb scratch;
    sl_wb rwb; /* receipts and ERRORs being encoded */
    char **tmp_topics;
    size_t ntmp;
    uint64_t tmp_seq;
    int32_t relay_from;   /* a relay session of node N (CONNECT sluice-relay) */
    char relay_proof[80]; /* its login's answer (cluster secret), or "" */
    /* a relay session's identity (CONNECT sluice-relay-epoch, -seq,
     * -session; relay_tick.c): the relaying process, the how-manieth
     * session it opened, and the client subscription it carries (owned;
     * NULL: none given) */
    int64_t relay_epoch;
    uint64_t relay_seq;
    char *relay_key;
    struct stomp_sendlink *sendlinks; /* to other nodes' temp queues */
    char vhost[STOMP_VHOST_MAX + 1];  /* CONNECT's host; "" = default "/" */
};

/* ---- small helpers ------------------------------------------------------- */

#define RECEIPT(f) sl_stomp_frame_value((f), "receipt")

/* The broker's queue groups (NULL before the groups module started and
 * after it stopped: then /queue and durable subscriptions are refused with
 * an ERROR). */
static inline sl_groups *srv_groups(stomp_srv *s)
{
    return sl_ops_groups(s->b);
}

static inline char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* sl_parse_i64 with the ok flag the callers here test (0 when not ok) */
static inline int64_t parse_i64(const char *s, int *ok)
{
    int64_t v = 0;
    *ok = sl_parse_i64(s, &v) == 0;
    return v;
}

static inline size_t out_len(stomp_conn *c)
{
    return sl_conn_out_len(c->conn);
}

static inline int out_high(stomp_conn *c)
{
    return sl_conn_out_high(c->conn);
}

static inline int conn_closing(stomp_conn *c)
{
    return sl_conn_closing(c->conn);
}

static inline void conn_write(stomp_conn *c, const void *p, size_t n)
{
    sl_conn_write(c->conn, p, n);
    c->last_write = sl_now_ms();
}

/* conn_write, sent now when nothing is queued (sl_conn_write_direct) */
static inline void conn_write_direct(stomp_conn *c, const void *p, size_t n)
{
    sl_conn_write_direct(c->conn, p, n);
    c->last_write = sl_now_ms();
}

static inline void conn_kick(stomp_conn *c)
{
    sl_conn_kick(c->conn);
}

/* ---- stomp.c: replies ---------------------------------------------------- */

/* The callback of sl_ops_wait_durable and sl_groups_wait: one held part of
 * a wait came back (conn.h). */
void stomp_wait_cb(void *arg, sl_err err);
/* Begin encoding a server frame (MESSAGE, RECEIPT, ERROR, CONNECTED):
 * counted per command for /metrics. */
void stomp_enc_begin(stomp_conn *c, sl_stomp_enc *e, sl_wb *wb, int version,
                     enum sl_stomp_cmd cmd);
/* Owe a RECEIPT once w completes (w NULL = at once, in order). */
void stomp_owe_receipt(stomp_conn *c, const char *receipt, sl_wait *w);
/* Send an ERROR (after the replies owed before it) and close. */
void stomp_send_error(stomp_conn *c, const char *receipt, const char *msg,
                      const char *detail);

/* ---- stomp_session.c ----------------------------------------------------- */

void stomp_h_connect(stomp_conn *c, const sl_stomp_frame *f);
void stomp_h_disconnect(stomp_conn *c, const sl_stomp_frame *f);
/* Log the development mode when the broker has no users (auth.c holds
 * them and imported stomp-users-file). */
sl_err stomp_users_init(stomp_srv *s, char *err, size_t errlen);
void stomp_users_fini(stomp_srv *s);

/* ---- stomp_send.c -------------------------------------------------------- */

/* Append the coalesced batch, if any. */
sl_err stomp_batch_flush(stomp_conn *c);
void stomp_h_send(stomp_conn *c, const sl_stomp_frame *f);
void stomp_h_begin(stomp_conn *c, const sl_stomp_frame *f);
/* COMMIT (abort = 0) or ABORT. */
void stomp_h_commit(stomp_conn *c, const sl_stomp_frame *f, int abort);
stomp_tx *stomp_tx_find(stomp_conn *c, const char *id);
void stomp_tx_push(stomp_tx *t, tx_op *o);
void stomp_tx_free(stomp_tx *t);

/* ---- stomp_sub.c --------------------------------------------------------- */

void stomp_h_subscribe(stomp_conn *c, const sl_stomp_frame *f);
void stomp_h_unsubscribe(stomp_conn *c, const sl_stomp_frame *f);
void stomp_h_ack(stomp_conn *c, const sl_stomp_frame *f);
stomp_sub *stomp_sub_find(stomp_conn *c, const char *id);
/* Create subscription id on d (as dstr). On failure why says it. */
sl_err stomp_sub_create(stomp_conn *c, const char *id, const char *dstr,
                        const dest *d, int ack, int64_t prefetch,
                        const char *durable_name, const sl_stomp_frame *f,
                        char *why, size_t whylen, stomp_sub **out);
void stomp_sub_link(stomp_conn *c, stomp_sub *s);
/* Free s (already unlinked): release what it holds. */
void stomp_sub_free(stomp_sub *s);
/* A connection without a subscription is a producer: the connection layer
 * may pace it (SL_PRI_INGRESS) when it streams. */
void stomp_conn_set_priority(stomp_conn *c);
/* The topic of a destination, created if missing. */
sl_err stomp_dest_topic(stomp_conn *c, const dest *d, int32_t *np);
/* Settle msgid (see stomp_sub.c); cumulative: every earlier delivery of
 * its subscription too, whatever its ack mode. SL_OK or SL_ERR_NOT_FOUND.
 * w (may be NULL): the wait of the receipt; a relayed settlement holds it
 * until the coordinator committed it. */
sl_err stomp_do_ack(stomp_conn *c, int cmd, const char *msgid, const char *hint,
                    int cumulative, int requeue, sl_wait *w,
                    int *settled_queue);

/* The queue consumer of s on this node, from what its SUBSCRIBE said
 * (relay.c calls it when the group's coordinator moves here). */
sl_err stomp_sub_open_local(stomp_sub *s, char *why, size_t whylen);
/* Stop serving s where it is served now (its deliveries become stale). */
void stomp_sub_unhome(stomp_sub *s);

/* ---- relay*.c (relay.c's essay says which file holds what) --------------- */

/* Who serves queue group `group` on `topic`: 0 this node (also: not a
 * cluster, or a topic the metadata does not hold), N > 0 node N, -1 none
 * now (its partition has no leader, or the node no STOMP address). */
int32_t stomp_relay_coordinator(stomp_srv *srv, const char *group,
                                const char *topic);
/* Relay to s (a plain /topic subscription) the partitions of its topic
 * this node holds no replica of; w (may be NULL) completes when they are
 * subscribed at their leaders. */
void stomp_relay_topic_open(stomp_sub *s, sl_wait *w);
/* Relay s (its group, qtopic set) to node (-1: wait for one). */
sl_err stomp_relay_open(stomp_sub *s, int32_t node);
void stomp_relay_free(struct stomp_relay *rl);
/* w (may be NULL) completes once rl is subscribed (or failed once). */
void stomp_relay_wait_subscribed(struct stomp_relay *rl, sl_wait *w);
/* Settle a delivery of a relayed subscription at its coordinator; w (may
 * be NULL) completes when the coordinator committed it. */
void stomp_relay_settle(stomp_sub *s, const pend *p, int cmd, int requeue,
                        sl_wait *w);
/* s, a relayed durable subscription, is being removed: have the
 * coordinator remove it too (amq_sub: ActiveMQ's name, else RabbitMQ's
 * durable:true). The session closes once that is sent; s may be freed
 * at once. */
void stomp_relay_drop(stomp_sub *s, const char *amq_sub);
/* ActiveMQ's UNSUBSCRIBE of an inactive durable subscription
 * (client-id.amq_sub) in a cluster: sent to every other node. */
void stomp_relay_unsubscribe_all(stomp_conn *c, const char *amq_sub);
/* Room in the client's output again: read the coordinator's MESSAGEs. */
void stomp_relay_pump(stomp_sub *s);
/* The node a relayed subscription is served by (-1: none yet). */
int32_t stomp_relay_node(const struct stomp_relay *rl);
/* The node whose temp queue topic is (N > 0), 0 when it is not another
 * node's temp queue, -1 when node N is not known now. */
int32_t stomp_relay_temp_owner(stomp_srv *srv, const char *topic);
/* Send f (reply-to: reply_to when not NULL) to dst, a temp queue of
 * node; w (may be NULL) completes with node's receipt. SL_OK, or nothing
 * was sent: SL_ERR_DISCONNECTED, SL_ERR_NOMEM. */
sl_err stomp_relay_send(stomp_conn *c, int32_t node, const char *dst,
                        const sl_stomp_frame *f, const char *reply_to,
                        sl_wait *w);
void stomp_relay_sendlinks_free(stomp_conn *c);
sl_err stomp_relay_init(stomp_srv *srv);
/* c, a relay session, was accepted: close the sessions it replaces (the
 * same node's older process, or an older session of the same client
 * subscription), their deliveries released as on a clean close. 0; -1
 * when c itself is older than one still open (then c got an ERROR). */
int stomp_relay_replace(stomp_conn *c);
void stomp_relay_fini(stomp_srv *srv);

/* ---- stomp_deliver.c ----------------------------------------------------- */

/* The queue consumer callbacks of a subscription (arg = the stomp_sub). */
void stomp_qc_deliver(void *arg, const sl_qdelivery *d);
void stomp_qc_flush(void *arg);
int stomp_qc_accept(void *arg, const sl_record *rec);
/* Refill credits and pump the readers of s. */
void stomp_sub_pump(stomp_sub *s);
/* A reader of topic for s, from the log end (from_start = 0) or start. */
sl_err stomp_reader_new(stomp_sub *s, const char *topic, int from_start);
/* Let r read partition part only (a relay session's subscription). */
void stomp_reader_only(treader *r, int32_t part);
void stomp_reader_free(stomp_srv *srv, treader *r);
/* Readers for every existing topic the wildcard subscription s matches. */
void stomp_wild_attach(stomp_sub *s);
/* The broker's append and topic-delete hooks (arg = the stomp_srv). */
void stomp_on_append(void *arg, const char *topic, int32_t partition,
                     int64_t end_offset);
void stomp_on_topic_delete(void *arg, const char *topic);

#endif
