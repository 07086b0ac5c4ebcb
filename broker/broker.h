/*
 * broker.h - the broker object (internal to broker/; modules use ops.h).
 */
#ifndef SL_BROKER_H
#define SL_BROKER_H

#include <event2/event.h>
#include <event2/listener.h>

#include "broker/config.h"
#include "broker/hist.h"
#include "broker/stomp_frame.h"
#include "broker/types.h"
#include "storage/flusher.h"

#define SL_MAX_API 1024

typedef struct sl_api_entry {
    sl_binary_handler fn;
    uint16_t min_version, max_version;
} sl_api_entry;

typedef struct sl_append_hook {
    sl_ops_append_fn fn;
    void *arg;
} sl_append_hook;

/* A rate-limited log line kind (conn.c, sl_conn_warn). */
typedef struct sl_warn_slot {
    const char *kind;
    int64_t start_ms;
    uint64_t more;
} sl_warn_slot;
#define SL_BROKER_WARN_KINDS 4

typedef struct sl_delete_hook {
    void (*fn)(void *arg, const char *topic);
    void *arg;
} sl_delete_hook;

struct sl_broker {
    sl_config cfg;
    struct event_base *base;
    sl_flusher *flusher;
    sl_topics *topics;
    int lock_fd;
    struct sl_bcluster *cluster; /* NULL unless --node-id (cluster.c) */
    struct sl_cluster_users *cluster_users; /* cluster_users.c */
    struct sl_observer *observer; /* cluster.c: observer.c's, or NULL */
    /* cluster.c: refuses client appends to partitions this node does not
     * lead (SL_ERR_NOT_LEADER); replica.c sets `replicating` around its
     * own appends, which the guard lets through */
    sl_err (*append_guard)(sl_broker *b, const char *topic, int32_t part);
    int replicating;
    /* producer_id.c: the next producer id counter and the end of the
     * block reserved in DATA/producer-ids (-1: not read yet) */
    int64_t pid_next, pid_end;
    /* cluster.c: a durable produce to a partition whose ISR is below
     * min-insync-replicas is refused before it is appended */
    sl_err (*durable_guard)(sl_broker *b, const char *topic, int32_t part,
                            const uint8_t *records, size_t len);
    /* replica.c (the leader's side): a follower's FETCH (version 2) reports
     * its log ends and durable offsets; called before the fetch is read.
     * NULL: not a cluster, version 2 is refused. */
    void (*replica_fetch)(sl_broker *b, struct sl_fetch_req *q);
    /* cluster.c: topics are auto-created through the metadata quorum.
     * auto_create (from every SL_OPS_AUTO_CREATE or SL_OPS_CREATE (DLQ)
     * lookup of an unknown topic) starts the creation and answers
     * SL_ERR_UNKNOWN_TOPIC (the DLQ move retries on its tick);
     * defer_create parks a request (its body copied) until the topic
     * exists here, then runs fn again with no_defer set. */
    sl_err (*auto_create)(sl_broker *b, const char *topic);
    sl_err (*defer_create)(sl_broker *b, const char *topic, sl_conn *c,
                           const sl_req *req, sl_reply *r,
                           sl_binary_handler fn);
    int no_defer;
    /* cluster.c (forward.c): an append this node cannot make because
     * another node leads the partition is sent to that leader as a
     * PRODUCE; cb(arg, rc) runs once, later, with its answer. SL_OK or why
     * nothing was sent. NULL: not a cluster. The STOMP SEND path uses it
     * (docs/cluster.md 5.1). */
    sl_err (*forward_append)(sl_broker *b, const char *topic, int32_t part,
                             const uint8_t *batch, size_t len, int durable,
                             void (*cb)(void *arg, sl_err rc), void *arg);
    struct sl_journal *journal; /* NULL when journal = no */

    struct evconnlistener *bin_lis, *stomp_lis;
    char bin_addr[80], stomp_addr[80];
    struct evconnlistener *ws_lis; /* stomp-ws-listen (ws.c), or NULL */
    char ws_addr[80];
    /* TLS listeners (tls.c; NULL when not configured) and the context
     * they share, rebuilt on SIGHUP */
    struct evconnlistener *bin_tls_lis, *stomp_tls_lis, *wss_lis;
    char bin_tls_addr[80], stomp_tls_addr[80], wss_addr[80];
    /* http-listen and http-tls-listen (http.c's ops; TLS one or NULL) */
    struct evconnlistener *http_lis, *http_tls_lis;
    char http_addr[80], http_tls_addr[80];
    struct ssl_ctx_st *tls_ctx;
    struct sl_proto {
        const struct sl_conn_ops *ops;
        void *arg;
        /* sl_conn_set_transport (NULL: plain TCP) */
        struct bufferevent *(*wrap)(void *arg, struct sl_conn *c,
                                    struct bufferevent *sock);
        void *wrap_arg;
        /* conn.c: accepted, and bytes of the connections already freed */
        uint64_t accepted, gone_in, gone_out;
    } protos[SL_LISTENER_N]; /* sl_conn_set_proto */

    struct event *flush_ev;  /* activated by the flusher's notify */
    struct event *append_ev; /* deferred append hooks and watches */
    struct event *spin_ev;   /* loop-spin-us: polls for the next round */
    uint64_t spin_rounds;    /* flusher rounds when the spin started */
    int64_t spin_start_us;
    /* flush-inline-us (ops.c, request_durable): after a batch of requests,
     * kick_ev decides; a lone waiter's round waits for the loop to be idle
     * (idle_ev, a zero timer of SL_PRI_INGRESS), at most until guard_ev */
    struct event *kick_ev, *idle_ev, *guard_ev;
    unsigned kick_appends;    /* deferred appends since the last kick */
    struct sl_tpart *kick_tp; /* the last of them (compared only) */
    int kick_dirty;           /* this batch also made a normal request */
    int kick_pending;         /* kick_ev active */
    int kick_idle;            /* idle_ev and guard_ev armed */
    struct event *maint_ev;   /* periodic sl_part_maintain */
    struct event *reap_ev;    /* frees closed connections */
    struct event *sig_term, *sig_int, *sig_hup, *sig_usr1, *sig_usr2;
    struct event *stop_timer;

    sl_api_entry apis[SL_MAX_API];
    uint64_t api_requests[SL_MAX_API]; /* dispatched, per api (/metrics) */
    sl_lat_hist api_lat[SL_MAX_API];   /* request to answer, per api */
    /* STOMP frames handled, per command, and the time handling took on
     * the loop (stomp.c; /metrics) */
    uint64_t stomp_frames[SL_STOMP_CMD__END];
    sl_lat_hist stomp_lat[SL_STOMP_CMD__END];
    uint64_t stomp_frames_out[SL_STOMP_CMD__END]; /* frames encoded */

    sl_append_hook *append_hooks;
    size_t nappend_hooks;
    sl_delete_hook *delete_hooks;
    size_t ndelete_hooks;
    struct sl_durable_hook {
        void (*fn)(void *arg);
        void *arg;
    } * durable_hooks;
    size_t ndurable_hooks;

    sl_tpart *dw_list; /* tparts with durable waiters */
    sl_tpart *ap_list; /* tparts appended since the last hook run */
    sl_tpart *dv_list; /* flush=always tparts with appends not yet durable */
    struct sl_ops_watch *watches; /* every live watch */
    struct sl_ops_watch *fire_head, *fire_tail;

    /* conn.c: every connection, whatever the protocol */
    struct sl_conn *conns;
    size_t nconns;           /* counted against max-connections */
    struct sl_conn *reap;    /* closed, to free */
    struct sl_conn *ingress; /* paced connections (SL_PRI_INGRESS) */
    struct sl_conn *corked;  /* with corked output (conn.c), to send */
    struct event *cork_ev;   /* sends it, at the end of the loop pass */
    /* cork buffers nobody uses (conn.c): an idle connection holds none */
    char *cork_pool[8];
    size_t cork_pool_cap[8];
    int ncork_pool;
    struct event *ingress_ev;  /* their guard timer */
    struct sl_addr_ent *addrs; /* per client address, when capped */
    size_t addr_cap, addr_used;
    int spare_fd;            /* closed to accept-and-close at EMFILE */
    int accept_paused;       /* out of descriptors: listeners off */
    int64_t emfile_ms;       /* last EMFILE/ENFILE, 0 = no episode */
    uint64_t emfile_refused; /* clients accepted-and-closed meanwhile */
    struct event *accept_ev; /* retries accepting */
    sl_warn_slot accept_warns[SL_BROKER_WARN_KINDS];
    size_t reaped_bytes; /* held by freed connections since a trim */
    uint64_t conn_ids;   /* the last connection id given */
    /* the INFO lines per connection opened/closed, rate-limited */
    int64_t connlog_ms;    /* start of the window */
    uint64_t connlog_n;    /* lines written in it */
    uint64_t connlog_more; /* lines left out in it */

    struct sl_stop_hook {
        void (*fn)(void *arg);
        void *arg;
    } * stop_hooks;
    size_t nstop_hooks;
    size_t holds;   /* sl_broker_hold - sl_broker_release */
    int conns_kept; /* sl_broker_keep_conns: not closed at the stop yet */

    /* module state (server.c's module table), each set by its own init */
    struct sl_gmod *gmod;       /* ops_groups.c */
    struct sl_bgroups *bgroups; /* binary_groups.c */
    struct sl_auth *auth;       /* auth.c: users, logins */
    /* acl.c: the permission rules loaded from meta.db */
    struct sl_acl_rule *acl_rules;
    size_t nacl_rules;
    /* admin.c: when the broker started, and the calls still running
     * (waiting for a commit or a redrive), cancelled at its fini */
    int64_t started_ms;
    struct sl_admin_call *admin_calls;

    size_t nmodules; /* server.c's modules[] whose init ran */
    int stopping;
    int exit_code;
};

/* ops.c internals used by server.c */
void sl_ops_init_events(sl_broker *b);
void sl_ops_on_flush(evutil_socket_t fd, short what, void *arg);
void sl_ops_on_append_ev(evutil_socket_t fd, short what, void *arg);
void sl_ops_on_kick(evutil_socket_t fd, short what, void *arg);
void sl_ops_on_kick_idle(evutil_socket_t fd, short what, void *arg);
void sl_ops_on_spin(evutil_socket_t fd, short what, void *arg);
/* Shutdown: every watch times out now. */
void sl_ops_expire_watches(sl_broker *b);
/* Complete every durable waiter with err (shutdown after the last flush). */
void sl_ops_fail_waiters(sl_broker *b, sl_err err);
/* Ask the flusher to cover every partition (final flush). */
void sl_ops_sync_all(sl_broker *b);

/* broker.c: at shutdown, exit the loop once nothing is in flight. */
void sl_server_check_stopped(sl_broker *b);

/* binary.c */
void sl_binary_init(sl_broker *b);
/* INIT_PRODUCER_ID (producer_id.c); sl_binary_init calls it. */
void sl_producer_id_init(sl_broker *b);

/* Dispatch one frame (binary.c's frame cutter -> its table). */
void sl_binary_dispatch(sl_broker *b, sl_conn *c, sl_req *req, sl_reply *r);

#endif
