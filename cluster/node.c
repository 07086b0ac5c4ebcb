/*
 * node.c - the metadata quorum member: libraft on its own thread and uv
 * loop, the controller, and the queues to the broker loop (see node.h for
 * the design and docs/cluster.md for why).
 */
#include "cluster/node.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cluster/fsm.h"
#include "cluster/lease.h"
#include "cluster/raft_auth.h"
#include "protocol/log.h"

enum { IT_APPLY = 1, IT_RESTORE, IT_DONE, IT_PROPOSE };

typedef struct item {
    struct item *next;
    int kind;
    uint64_t index;
    uint8_t *buf;
    size_t len;
    sl_err rc;
    char msg[160];
    sl_cluster_done_fn fn;
    void *arg;
    struct raft_apply req;
    struct raft_change change; /* membership requests */
    int32_t member;
    struct sl_cluster_node *node;
} item;

typedef struct ilist {
    item *head, *tail;
} ilist;

/* Liveness of one member, as this node sees it (raft thread; the
 * controller's rules are in docs/cluster.md, "Failure detection"):
 * - heard: when its last Raft message arrived (any message: heartbeat
 *   replies, votes), noted by io_recv_hook as it arrives;
 * - seen: the start of its current session: heard, or the moment a new
 *   metadata leader gave it a fresh session; fenced when now - seen
 *   reaches session_ms;
 * - refused: consecutive connects to its Raft address refused while it
 *   was silent (probe_cb). A refused connect is a definite signal: the
 *   machine answered that nothing listens there, so the process is gone;
 *   two of them, a tick apart, fence it without waiting out the session.
 *   A paused process (its socket still listens) or a lost machine or
 *   link (no answer at all) never refuses: those wait for the session. */
struct probe;
struct live {
    int32_t id;
    uint64_t heard, seen;
    unsigned refused;
    int wiped;           /* answered below what it had acknowledged */
    uint64_t probe_done; /* when the last probe finished */
    struct probe *probe; /* in flight */
};

/* A connect to a silent member's Raft address (struct live). */
typedef struct probe {
    struct sl_cluster_node *n;
    int32_t id;
    uint64_t start;
    uv_tcp_t tcp;
    uv_connect_t req;
} probe;

struct sl_cluster_node {
    int32_t id;
    char listen[SL_CLUSTER_ADDR_MAX];
    char addr[SL_CLUSTER_ADDR_MAX], stomp_addr[SL_CLUSTER_ADDR_MAX];
    char tls_addr[SL_CLUSTER_ADDR_MAX];
    char *dir;
    sl_cluster_peer peers[SL_CLUSTER_MAX_PEERS];
    size_t npeers;
    unsigned session_ms;
    void (*notify)(void *arg);
    void *notify_arg;
    uint64_t start_index; /* raft_last_index after raft_start */

    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    struct raft_uv_transport transport;
    struct raft_uv_transport auth_transport; /* with a secret: raft_auth.c */
    struct raft_io io;
    struct raft raft;
    sl_meta_fsm fsm;
    int loop_init, transport_init, io_init, raft_init;
    pthread_t thr;
    int thr_started;

    pthread_mutex_t mu; /* guards inbox, outbox, stopping, st */
    ilist inbox, outbox;
    int stopping;
    int leaving; /* controlled shutdown: do not register again */
    int closing; /* raft_close called (raft thread) */
    unsigned election_ms;
    struct raft_transfer xfer;
    sl_cluster_status st;

    /* controller, raft thread only */
    raft_term barrier_term, barrier_for;
    int barrier_pending;
    struct raft_barrier barrier;
    int ctl_pending;
    /* liveness of every member of the Raft configuration (live_slot) */
    struct live live[SL_META_MAX_NODES];
    size_t nlive;
    unsigned heartbeat_ms;
    /* the io's start and libraft's receive callback, wrapped to note when
     * each message arrives (io_start_hook) */
    int (*io_start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv);
    raft_io_recv_cb raft_recv;
    /* a wiped voter's demotion and promotion (wiped_step) */
    struct raft_change wchange;
    int wchange_busy;
    /* as a follower: the Raft leader */
    raft_id prev_leader;
    uint64_t last_tick; /* the controller's previous tick (uv_now) */

    /* the coordinator lease (cluster/lease.c): rules on the raft thread;
     * until and the outbox position the loop must have drained to trust
     * it are published under mu */
    sl_lease lease;
    uint64_t pushed;     /* outbox items ever pushed (mu) */
    uint64_t drained;    /* pushed count the loop has applied (loop) */
    int64_t lease_until; /* CLOCK_MONOTONIC ms (mu) */
    uint64_t lease_seq;  /* pushed when lease_until was computed (mu) */
};

static void ipush(ilist *l, item *it)
{
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
}

static item *ipop_all(ilist *l)
{
    item *h = l->head;
    l->head = l->tail = NULL;
    return h;
}

static void item_free(item *it)
{
    if (it) {
        free(it->buf);
        free(it);
    }
}

/* ---- peers ------------------------------------------------------------- */

sl_err sl_cluster_parse_peers(const char *s, sl_cluster_peer *out, size_t *n,
                              char *err, size_t errlen)
{
    size_t k = 0;
    const char *p = s;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char ent[SL_CLUSTER_ADDR_MAX + 16];
        char *at, *colon, *e;
        long id;

        if (len == 0 || len >= sizeof(ent)) {
            snprintf(err, errlen,
                     "cluster-peers: bad entry '%.*s' (want "
                     "ID@HOST:PORT)",
                     (int)(len > 80 ? 80 : len), p);
            return SL_ERR_INVALID_CONFIG;
        }
        memcpy(ent, p, len);
        ent[len] = 0;
        at = strchr(ent, '@');
        colon = at ? strrchr(at, ':') : NULL;
        errno = 0;
        id = at ? strtol(ent, &e, 10) : 0;
        if (!at || e != at || id < 1 || id > 1000000 || !colon ||
            colon == at + 1 || !colon[1] ||
            strlen(at + 1) >= SL_CLUSTER_ADDR_MAX) {
            snprintf(err, errlen,
                     "cluster-peers: bad entry '%s' (want "
                     "ID@HOST:PORT with ID in 1..1000000)",
                     ent);
            return SL_ERR_INVALID_CONFIG;
        }
        if (k == SL_CLUSTER_MAX_PEERS) {
            snprintf(err, errlen, "cluster-peers: more than %d peers",
                     SL_CLUSTER_MAX_PEERS);
            return SL_ERR_INVALID_CONFIG;
        }
        for (size_t i = 0; i < k; i++)
            if (out[i].id == id || !strcmp(out[i].addr, at + 1)) {
                snprintf(err, errlen,
                         "cluster-peers: '%s' repeats an id or "
                         "an address",
                         ent);
                return SL_ERR_INVALID_CONFIG;
            }
        /* insert sorted by id */
        {
            size_t i = k;
            while (i > 0 && out[i - 1].id > id) {
                out[i] = out[i - 1];
                i--;
            }
            out[i].id = (int32_t)id;
            snprintf(out[i].addr, sizeof(out[i].addr), "%s", at + 1);
        }
        k++;
        p = end ? end + 1 : NULL;
    }
    if (k == 0) {
        snprintf(err, errlen,
                 "cluster-peers: empty (want "
                 "1@HOST:PORT,2@HOST:PORT,...)");
        return SL_ERR_INVALID_CONFIG;
    }
    *n = k;
    return SL_OK;
}

/* ---- raft thread -> loop ------------------------------------------------ */

/* @thread raft */
static void outbox_push(sl_cluster_node *n, item *it)
{
    pthread_mutex_lock(&n->mu);
    ipush(&n->outbox, it);
    n->pushed++;
    pthread_mutex_unlock(&n->mu);
    if (n->notify)
        n->notify(n->notify_arg);
}

static item *copy_item(int kind, uint64_t index, const void *p, size_t len)
{
    item *it = calloc(1, sizeof(*it));
    if (!it || !(it->buf = malloc(len ? len : 1))) {
        /* the loop's image would diverge from the FSM's: same rule as
         * apply (meta.h) */
        fprintf(stderr, "cluster: out of memory passing metadata on\n");
        abort();
    }
    it->kind = kind;
    it->index = index;
    memcpy(it->buf, p, len);
    it->len = len;
    return it;
}

static void on_fsm_apply(void *arg, uint64_t index, const void *cmd, size_t len,
                         sl_err rc)
{
    sl_log(SL_DEBUG, "cluster", "applied index %llu type %d: %s",
           (unsigned long long)index, sl_meta_cmd_type(cmd, len),
           sl_strerror(rc));
    outbox_push(arg, copy_item(IT_APPLY, index, cmd, len));
}

static void on_fsm_restore(void *arg, const void *snap, size_t len)
{
    outbox_push(arg, copy_item(IT_RESTORE, 0, snap, len));
}

static void done(sl_cluster_node *n, item *it, sl_err rc, const char *msg)
{
    it->kind = IT_DONE;
    it->rc = rc;
    snprintf(it->msg, sizeof(it->msg), "%s", msg ? msg : "");
    outbox_push(n, it);
}

static void publish_status(sl_cluster_node *n)
{
    raft_id lid = 0;
    const char *laddr = NULL;
    sl_cluster_status st;

    raft_leader(&n->raft, &lid, &laddr);
    st.node_id = n->id;
    st.leader_id = (int32_t)lid;
    switch (raft_state(&n->raft)) {
    case RAFT_FOLLOWER:
        st.role = 1;
        break;
    case RAFT_CANDIDATE:
        st.role = 2;
        break;
    case RAFT_LEADER:
        st.role = 3;
        break;
    default:
        st.role = 0;
    }
    st.term = n->raft.current_term;
    st.applied = raft_last_applied(&n->raft);
    st.start_index = n->start_index;
    pthread_mutex_lock(&n->mu);
    n->st = st;
    pthread_mutex_unlock(&n->mu);
}

/* ---- proposals (raft thread) ------------------------------------------- */

static void prop_cb(struct raft_apply *req, int status, void *result)
{
    item *it = req->data;
    sl_cluster_node *n = it->node;
    if (status == 0)
        done(n, it, (sl_err)(intptr_t)result, NULL);
    else if (status == RAFT_SHUTDOWN)
        done(n, it, SL_ERR_SHUTTING_DOWN, "the broker is stopping");
    else
        done(n, it, SL_ERR_TIMEOUT,
             "the metadata leader changed before the command committed; it "
             "may or may not be applied: check, then retry");
}

static void not_leader(sl_cluster_node *n, item *it)
{
    raft_id lid = 0;
    const char *laddr = NULL;
    char msg[160];
    raft_leader(&n->raft, &lid, &laddr);
    if (lid) {
        const sl_mi_node *ln = sl_meta_node_find(&n->fsm.meta, (int32_t)lid);
        snprintf(msg, sizeof(msg),
                 "not the metadata leader; the leader is node %llu%s%s",
                 (unsigned long long)lid, ln && ln->addr[0] ? " at " : "",
                 ln && ln->addr[0] ? ln->addr : "");
    } else {
        snprintf(msg, sizeof(msg),
                 "no metadata leader yet (election in "
                 "progress or no quorum); retry");
    }
    done(n, it, SL_ERR_BUSY, msg);
}

/* ---- membership (cluster add-node / remove-node, raft thread) ---------- */

static void xfer_noop(struct raft_transfer *req)
{
    (void)req;
}

static sl_err raft_to_sl(int rv)
{
    return rv == RAFT_CANTCHANGE || rv == RAFT_NOTLEADER ||
                   rv == RAFT_LEADERSHIPLOST
               ? SL_ERR_BUSY
               : SL_ERR_UNKNOWN;
}

static const struct raft_server *config_find(const sl_cluster_node *n,
                                             int32_t id)
{
    for (unsigned i = 0; i < n->raft.configuration.n; i++)
        if ((int32_t)n->raft.configuration.servers[i].id == id)
            return &n->raft.configuration.servers[i];
    return NULL;
}

static void member_done(item *it, int status, const char *what)
{
    char msg[160];
    if (status == 0) {
        sl_log(SL_INFO, "cluster", "node %d %s", (int)it->member, what);
        done(it->node, it, SL_OK, NULL);
        return;
    }
    snprintf(msg, sizeof(msg), "membership change of node %d: %s%s",
             (int)it->member, raft_strerror(status),
             status == RAFT_CANTCHANGE ? " (another change is in progress; "
                                         "retry)"
                                       : "");
    done(it->node, it, raft_to_sl(status), msg);
}

static void assign_cb(struct raft_change *req, int status)
{
    member_done(req->data, status, "is a voter of the metadata quorum");
}

static void add_cb(struct raft_change *req, int status)
{
    item *it = req->data;
    int rv;
    if (status != 0) {
        member_done(it, status, "");
        return;
    }
    /* a spare now: libraft catches it up, then makes it a voter */
    rv = raft_assign(&it->node->raft, &it->change, (raft_id)it->member,
                     RAFT_VOTER, assign_cb);
    if (rv != 0)
        member_done(it, rv, "");
}

static void remove_cb(struct raft_change *req, int status)
{
    member_done(req->data, status, "left the metadata quorum");
}

static void member_change(sl_cluster_node *n, item *it)
{
    char addr[SL_CLUSTER_ADDR_MAX];
    const struct raft_server *sv;
    int type, rv;

    if (sl_meta_dec_member(it->buf, it->len, &type, &it->member, addr,
                           sizeof(addr)) != SL_OK) {
        done(n, it, SL_ERR_MALFORMED, "bad membership request");
        return;
    }
    it->node = n;
    it->change.data = it;
    sv = config_find(n, it->member);
    if (type == SL_MREQ_MEMBER_ADD) {
        if (sv && sv->role == RAFT_VOTER) {
            done(n, it, SL_OK, NULL); /* already: nothing to do */
            return;
        }
        rv = sv ? raft_assign(&n->raft, &it->change, (raft_id)it->member,
                              RAFT_VOTER, assign_cb)
                : raft_add(&n->raft, &it->change, (raft_id)it->member, addr,
                           add_cb);
    } else {
        if (!sv) {
            done(n, it, SL_OK, NULL);
            return;
        }
        if (it->member == n->id) {
            /* the leader does not remove itself: it hands the leadership
             * to another voter, which the request is then sent to */
            raft_transfer(&n->raft, &n->xfer, 0, xfer_noop);
            done(n, it, SL_ERR_BUSY,
                 "this node is the metadata leader: it hands the leadership "
                 "over first; retry");
            return;
        }
        rv = raft_remove(&n->raft, &it->change, (raft_id)it->member, remove_cb);
    }
    if (rv != 0)
        member_done(it, rv, "");
}

static void submit(sl_cluster_node *n, item *it)
{
    struct raft_buffer b;
    int rv, type;

    if (raft_state(&n->raft) != RAFT_LEADER) {
        not_leader(n, it);
        return;
    }
    type = sl_meta_cmd_type(it->buf, it->len);
    if (type == SL_MREQ_MEMBER_ADD || type == SL_MREQ_MEMBER_REMOVE) {
        member_change(n, it);
        return;
    }
    if (sl_meta_fsm_wrap(it->buf, it->len, &b) != SL_OK) {
        done(n, it, SL_ERR_NOMEM, NULL);
        return;
    }
    it->node = n;
    it->req.data = it;
    rv = raft_apply(&n->raft, &it->req, &b, 1, prop_cb);
    if (rv != 0) {
        raft_free(b.base);
        if (rv == RAFT_NOTLEADER)
            not_leader(n, it);
        else
            done(n, it, SL_ERR_UNKNOWN, raft_strerror(rv));
    }
}

/* ---- controller (raft thread) ------------------------------------------ */

static void ctl_cb(struct raft_apply *req, int status, void *result)
{
    sl_cluster_node *n = req->data;
    sl_err rc = status == 0 ? (sl_err)(intptr_t)result : SL_ERR_TIMEOUT;
    if (rc != SL_OK)
        sl_log(SL_DEBUG, "cluster", "controller command: %s", sl_strerror(rc));
    n->ctl_pending--;
    raft_free(req);
}

static void ctl_propose(sl_cluster_node *n, const uint8_t *cmd, size_t len)
{
    struct raft_apply *req = raft_malloc(sizeof(*req));
    struct raft_buffer b;
    if (!req)
        return;
    if (sl_meta_fsm_wrap(cmd, len, &b) != SL_OK) {
        raft_free(req);
        return;
    }
    req->data = n;
    if (raft_apply(&n->raft, req, &b, 1, ctl_cb) != 0) {
        raft_free(b.base);
        raft_free(req);
        return;
    }
    n->ctl_pending++;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    sl_cluster_node *n = req->data;
    n->barrier_pending = 0;
    if (status == 0) {
        n->barrier_term = n->barrier_for;
        sl_log(SL_INFO, "cluster", "node %d is the metadata leader (term %llu)",
               (int)n->id, (unsigned long long)n->barrier_term);
    }
}

static int peer_index(const sl_cluster_node *n, int32_t id)
{
    for (size_t i = 0; i < n->npeers; i++)
        if (n->peers[i].id == id)
            return (int)i;
    return -1;
}

/* The liveness slot of member id (added, heard and seen now, when new);
 * NULL when the table is full. */
static struct live *live_slot(sl_cluster_node *n, int32_t id, uint64_t now)
{
    struct live *l;
    for (size_t i = 0; i < n->nlive; i++)
        if (n->live[i].id == id)
            return &n->live[i];
    if (n->nlive == SL_META_MAX_NODES)
        return NULL;
    l = &n->live[n->nlive++];
    memset(l, 0, sizeof(*l));
    l->id = id;
    l->heard = l->seen = now;
    return l;
}

/* libraft's receive callback, wrapped: every message notes its sender as
 * heard now, before libraft handles it. */
/* A follower whose log ends below the index it had acknowledged (its
 * match index) lost its Raft log: its data directory was wiped (a
 * correct Raft node never loses an entry it acknowledged: libraft
 * persists before it answers). Noted as the leader; wiped_step demotes
 * it. */
static void note_wiped(sl_cluster_node *n, struct live *l,
                       const struct raft_message *msg)
{
    const struct raft_append_entries_result *r = &msg->append_entries_result;
    if (msg->type != RAFT_IO_APPEND_ENTRIES_RESULT ||
        raft_state(&n->raft) != RAFT_LEADER || !r->rejected || l->wiped)
        return;
    for (unsigned i = 0; i < n->raft.configuration.n; i++)
        if (n->raft.configuration.servers[i].id == msg->server_id &&
            n->raft.configuration.servers[i].role == RAFT_VOTER &&
            r->last_log_index < n->raft.leader_state.progress[i].match_index) {
            sl_log(SL_WARN, "cluster",
                   "node %d lost its Raft log (its log ends at %llu, it had "
                   "acknowledged %llu): a wiped data directory; it is a "
                   "non-voter until it has caught up",
                   (int)l->id, (unsigned long long)r->last_log_index,
                   (unsigned long long)n->raft.leader_state.progress[i]
                       .match_index);
            l->wiped = 1;
        }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The coordinator lease's part of a message (cluster/lease.c). */
static void lease_recv(sl_cluster_node *n, const struct raft_message *m)
{
    if (m->type == RAFT_IO_APPEND_ENTRIES)
        sl_lease_on_msg(&n->lease, mono_ms(), SL_LEASE_MSG_APPEND,
                        (int32_t)m->server_id, m->append_entries.term,
                        m->append_entries.leader_commit);
    else if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT)
        sl_lease_on_msg(&n->lease, mono_ms(), SL_LEASE_MSG_RESULT,
                        (int32_t)m->server_id, m->append_entries_result.term,
                        0);
}

static void io_recv_hook(struct raft_io *io, struct raft_message *msg)
{
    sl_cluster_node *n =
        (sl_cluster_node *)((char *)io - offsetof(sl_cluster_node, io));
    uint64_t now = uv_now(&n->loop);
    struct live *l = live_slot(n, (int32_t)msg->server_id, now);
    if (l) {
        l->heard = now;
        note_wiped(n, l, msg);
    }
    lease_recv(n, msg);
    n->raft_recv(io, msg);
}

static int io_start_hook(struct raft_io *io, unsigned msecs,
                         raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    sl_cluster_node *n =
        (sl_cluster_node *)((char *)io - offsetof(sl_cluster_node, io));
    n->raft_recv = recv;
    return n->io_start(io, msecs, tick, io_recv_hook);
}

static void probe_closed(uv_handle_t *h)
{
    free(h->data);
}

static void probe_close(probe *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, probe_closed);
}

static void probe_cb(uv_connect_t *req, int status)
{
    probe *p = req->data;
    sl_cluster_node *n = p->n;
    for (size_t i = 0; i < n->nlive; i++) {
        struct live *l = &n->live[i];
        if (l->probe != p)
            continue;
        l->probe = NULL;
        l->probe_done = uv_now(&n->loop);
        if (status == UV_ECONNREFUSED && l->heard <= p->start) {
            if (++l->refused == 1)
                sl_log(SL_INFO, "cluster",
                       "node %d silent and its Raft address refuses "
                       "connections; confirming",
                       (int)l->id);
        } else {
            l->refused = 0;
        }
    }
    probe_close(p);
}

/* Stop l's probe, if any (it counts as not refused). */
static void probe_cancel(struct live *l)
{
    if (l->probe) {
        probe_close(l->probe); /* probe_cb runs with UV_ECANCELED */
        l->probe = NULL;
    }
}

/* Connect to address (HOST:PORT or [HOST]:PORT, numeric) to learn whether
 * anything listens there. */
static void probe_start(sl_cluster_node *n, struct live *l, const char *address,
                        uint64_t now)
{
    struct sockaddr_storage ss;
    char host[SL_CLUSTER_ADDR_MAX];
    const char *colon = strrchr(address, ':');
    size_t hl;
    probe *p;
    int port;

    if (!colon || (hl = (size_t)(colon - address)) >= sizeof(host))
        return;
    memcpy(host, address, hl);
    host[hl] = 0;
    port = atoi(colon + 1);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
            return;
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0) {
        return;
    }
    if (!(p = calloc(1, sizeof(*p))))
        return;
    p->n = n;
    p->id = l->id;
    p->start = now;
    p->tcp.data = p;
    p->req.data = p;
    if (uv_tcp_init(&n->loop, &p->tcp) != 0) {
        free(p);
        return;
    }
    if (uv_tcp_connect(&p->req, &p->tcp, (struct sockaddr *)&ss, probe_cb) !=
        0) {
        probe_close(p);
        l->probe_done = now;
        return;
    }
    l->probe = p;
}

/* Probe member l (Raft address address), silent since `since`, once per
 * tick while it stays silent; 1 once two probes in a row were refused
 * (the process is gone), else 0. */
static int probe_step(sl_cluster_node *n, struct live *l, const char *address,
                      uint64_t since, uint64_t now)
{
    if (now - since < 3 * (uint64_t)n->heartbeat_ms) { /* not silent */
        l->refused = 0;
        probe_cancel(l);
        return 0;
    }
    if (l->refused >= 2)
        return 1;
    if (l->probe && now - l->probe->start > 4 * (uint64_t)n->heartbeat_ms)
        probe_cancel(l); /* no answer at all: not a refusal */
    else if (!l->probe && now - l->probe_done >= n->heartbeat_ms)
        probe_start(n, l, address, now);
    return 0;
}

/* The controller's view of member l (Raft address address) at now: 1
 * alive, 0 not (fence it): silent for a whole session, or silent with
 * its address refusing connections. */
static int live_check(sl_cluster_node *n, struct live *l, const char *address,
                      uint64_t now)
{
    if (l->heard > l->seen)
        l->seen = l->heard;
    if (now - l->seen >= n->session_ms)
        return 0;
    return !probe_step(n, l, address, l->seen, now);
}

/* As a follower: when the Raft leader lid (at address) fell silent and
 * its address refuses connections, it is gone; start the election now
 * rather than after a whole election timeout (libraft's follower starts
 * one once now - election_timer_start reaches its randomized timeout, at
 * most twice election_ms). Both followers see it; the first that stands
 * may be refused by the other until that one sees it too, a tick later,
 * and stands itself. */
static void leader_check(sl_cluster_node *n, raft_id lid, const char *address,
                         uint64_t now)
{
    struct live *l = live_slot(n, (int32_t)lid, now);
    uint64_t back = 2 * (uint64_t)n->election_ms;
    if (!l || !address || !probe_step(n, l, address, l->heard, now))
        return;
    if (now > back && now - n->raft.election_timer_start < back) {
        sl_log(SL_WARN, "cluster",
               "the metadata leader (node %d) is silent and its Raft "
               "address refuses connections: standing for election now",
               (int)lid);
        n->raft.election_timer_start = now - back;
    }
}

static void wchange_cb(struct raft_change *req, int status)
{
    sl_cluster_node *n = req->data;
    n->wchange_busy = 0;
    if (status != 0)
        sl_log(SL_INFO, "cluster",
               "metadata quorum change for a wiped "
               "node: %s; retrying",
               raft_strerror(status));
}

/* A wiped voter (note_wiped) becomes a standby: it replicates the log but
 * neither votes nor counts for commits, so the votes it forgot cannot be
 * cast twice and an empty log cannot make a majority. A standby (Sluice
 * makes none otherwise) caught up to the commit index and heard from is
 * promoted again; libraft's promotion catches it up to the end first.
 * One change at a time; from the controller's tick (the leader). */
static void wiped_step(sl_cluster_node *n, uint64_t now)
{
    if (n->wchange_busy || n->raft.leader_state.change)
        return;
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        const struct raft_server *sv = &n->raft.configuration.servers[i];
        struct live *l = live_slot(n, (int32_t)sv->id, now);
        int role = -1;
        if (!l || (int32_t)sv->id == n->id)
            continue;
        if (sv->role == RAFT_VOTER && l->wiped)
            role = RAFT_STANDBY;
        else if (sv->role == RAFT_STANDBY &&
                 n->raft.leader_state.progress[i].match_index >=
                     n->raft.commit_index &&
                 now - l->heard < 3 * (uint64_t)n->heartbeat_ms)
            role = RAFT_VOTER;
        if (role < 0)
            continue;
        n->wchange.data = n;
        if (raft_assign(&n->raft, &n->wchange, sv->id, role, wchange_cb) != 0)
            return;
        n->wchange_busy = 1;
        l->wiped = 0;
        sl_log(
            SL_WARN, "cluster",
            role == RAFT_STANDBY
                ? "node %d: a non-voter of the metadata quorum until it "
                  "has caught up"
                : "node %d caught up (index %llu): a voter of the "
                  "metadata quorum again",
            (int)sv->id,
            (unsigned long long)n->raft.leader_state.progress[i].match_index);
        return;
    }
}

static void controller(sl_cluster_node *n)
{
    const sl_meta *m = &n->fsm.meta;
    uint64_t now = uv_now(&n->loop);
    int32_t ids[SL_META_MAX_NODES];
    int alive[SL_META_MAX_NODES];
    size_t k = 0;
    sl_wb wb;
    const sl_mi_node *self;
    int leaving;

    /* A tick much later than the last one means this process itself was
     * paused (SIGSTOP, a stalled VM): the silence it measured is its own,
     * so everyone gets a full session again instead of being fenced. */
    if (n->last_tick && now - n->last_tick > n->session_ms / 2)
        for (size_t i = 0; i < n->nlive; i++) {
            n->live[i].seen = now;
            n->live[i].refused = 0;
        }
    n->last_tick = now;
    if (raft_state(&n->raft) == RAFT_FOLLOWER) {
        raft_id lid = 0;
        const char *laddr = NULL;
        raft_leader(&n->raft, &lid, &laddr);
        if (lid && lid != (raft_id)n->id) {
            n->prev_leader = lid;
            leader_check(n, lid, laddr, now);
        }
    }
    if (raft_state(&n->raft) != RAFT_LEADER) {
        n->barrier_term = 0;
        for (size_t i = 0; i < n->nlive; i++)
            if (n->live[i].id != (int32_t)n->prev_leader ||
                raft_state(&n->raft) != RAFT_FOLLOWER)
                probe_cancel(&n->live[i]);
        return;
    }
    if (n->barrier_term != n->raft.current_term) {
        if (!n->barrier_pending) {
            n->barrier.data = n;
            n->barrier_for = n->raft.current_term;
            if (raft_barrier(&n->raft, &n->barrier, barrier_cb) == 0)
                n->barrier_pending = 1;
            /* a new leader gives everyone a full session before fencing,
             * except the leader it replaces: this node was elected because
             * that one fell silent, so its session runs from when it was
             * last heard (a dead metadata leader is fenced one election
             * earlier; a live one is heard again within a heartbeat) */
            for (unsigned i = 0; i < n->raft.configuration.n; i++)
                live_slot(n, (int32_t)n->raft.configuration.servers[i].id, now);
            for (size_t i = 0; i < n->nlive; i++) {
                struct live *l = &n->live[i];
                int prev = l->id == (int32_t)n->prev_leader;
                l->seen = prev && l->heard <= now ? l->heard : now;
                if (!prev) /* the old leader's refusals still hold */
                    l->refused = 0;
            }
        }
        return;
    }
    wiped_step(n, now);
    if (n->ctl_pending > 0)
        return;
    sl_wb_init(&wb, 256);
    /* every member of the Raft configuration (the bootstrap peers, and
     * nodes added by cluster add-node) is in the image */
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        const struct raft_server *sv = &n->raft.configuration.servers[i];
        if (sl_meta_node_find(m, (int32_t)sv->id))
            continue;
        sl_meta_enc_register(&wb, (int32_t)sv->id, sv->address, "", "");
        ctl_propose(n, wb.p, wb.len);
        sl_wb_reset(&wb);
    }
    self = sl_meta_node_find(m, n->id);
    pthread_mutex_lock(&n->mu);
    leaving = n->leaving;
    pthread_mutex_unlock(&n->mu);
    /* a node that stopped itself (SL_MI_STOPPED) registers when it is
     * back, which lets the controller unfence it */
    if (self && !leaving &&
        (strcmp(self->addr, n->addr) ||
         strcmp(self->stomp_addr, n->stomp_addr) ||
         strcmp(self->tls_addr, n->tls_addr) ||
         self->fenced == SL_MI_STOPPED)) {
        sl_meta_enc_register_tls(&wb, n->id, "", n->addr, n->stomp_addr,
                                 n->tls_addr);
        ctl_propose(n, wb.p, wb.len);
        sl_wb_reset(&wb);
    }
    if (n->ctl_pending > 0) {
        sl_wb_fini(&wb);
        return;
    }
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        const struct raft_server *s = &n->raft.configuration.servers[i];
        struct live *l = live_slot(n, (int32_t)s->id, now);
        if (!l || k == SL_META_MAX_NODES)
            continue;
        if ((int32_t)s->id == n->id)
            l->heard = now;
        ids[k] = (int32_t)s->id;
        alive[k] = live_check(n, l, s->address, now);
        k++;
    }
    if (sl_meta_liveness_cmds(m, ids, alive, k, &wb) > 0) {
        size_t off = 0;
        while (off + 4 <= wb.len) {
            uint32_t len = sl_get_u32(wb.p + off);
            int type = sl_meta_cmd_type(wb.p + off + 4, len);
            uint32_t who = sl_get_u32(wb.p + off + 6);
            struct live *l = live_slot(n, (int32_t)who, now);
            sl_log(SL_WARN, "cluster", "controller: %s node %u",
                   type != SL_MCMD_FENCE_NODE ? "unfencing (alive)"
                   : l && l->refused >= 2
                       ? "fencing (silent, its Raft address refuses "
                         "connections)"
                       : "fencing (not heard from)",
                   who);
            ctl_propose(n, wb.p + off + 4, len);
            off += 4 + len;
        }
    }
    /* reassignments whose new replicas are all in sync: complete them
     * (docs/cluster.md 10.3) */
    sl_wb_reset(&wb);
    if (n->ctl_pending == 0 && sl_meta_reassign_cmds(m, &wb) > 0) {
        size_t off = 0;
        while (off + 4 <= wb.len) {
            uint32_t len = sl_get_u32(wb.p + off);
            ctl_propose(n, wb.p + off + 4, len);
            off += 4 + len;
        }
    }
    sl_wb_fini(&wb);
}

static void node_raft_closed(struct raft *r)
{
    sl_cluster_node *n = r->data;
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    sl_raft_auth_fini(&n->auth_transport);
}

/* ---- the coordinator lease (cluster/lease.c) ---------------------------- */

/* Every tick: the lease from what lease_recv noted, published (with the
 * outbox position it counts on) for sl_cluster_lease_valid. */
static void lease_update(sl_cluster_node *n)
{
    int32_t voters[SL_LEASE_VOTERS];
    size_t nv = 0;
    raft_id lid = 0;
    const char *laddr = NULL;
    int role;
    int64_t until;
    switch (raft_state(&n->raft)) {
    case RAFT_FOLLOWER:
        role = SL_LEASE_FOLLOWER;
        break;
    case RAFT_LEADER:
        role = SL_LEASE_LEADER;
        break;
    default:
        role = SL_LEASE_CANDIDATE;
    }
    raft_leader(&n->raft, &lid, &laddr);
    for (unsigned i = 0; i < n->raft.configuration.n && nv < SL_LEASE_VOTERS;
         i++)
        if (n->raft.configuration.servers[i].role == RAFT_VOTER)
            voters[nv++] = (int32_t)n->raft.configuration.servers[i].id;
    until = sl_lease_tick(&n->lease, mono_ms(), role, (int32_t)lid,
                          n->raft.current_term, raft_last_applied(&n->raft),
                          voters, nv);
    pthread_mutex_lock(&n->mu);
    n->lease_until = until;
    n->lease_seq = n->pushed; /* what the FSM applied is in the outbox */
    pthread_mutex_unlock(&n->mu);
}

int sl_cluster_lease_valid(sl_cluster_node *n, int64_t *left_ms)
{
    int64_t until, now = mono_ms();
    uint64_t seq;
    pthread_mutex_lock(&n->mu);
    until = n->lease_until;
    seq = n->lease_seq;
    pthread_mutex_unlock(&n->mu);
    if (left_ms)
        *left_ms = until > now ? until - now : 0;
    return now < until && n->drained >= seq;
}

int64_t sl_cluster_lease_lapsed_ms(sl_cluster_node *n)
{
    int64_t until, now = mono_ms();
    pthread_mutex_lock(&n->mu);
    until = n->lease_until;
    pthread_mutex_unlock(&n->mu);
    if (until <= 0)
        return INT64_MAX;
    return now > until ? now - until : 0;
}

int64_t sl_cluster_lease_ms(sl_cluster_node *n)
{
    return n->lease.lease_ms;
}

static void tick_cb(uv_timer_t *t)
{
    sl_cluster_node *n = t->data;
    controller(n);
    publish_status(n);
    lease_update(n);
}

static void close_raft(sl_cluster_node *n)
{
    if (n->closing)
        return;
    n->closing = 1;
    for (size_t i = 0; i < n->nlive; i++)
        probe_cancel(&n->live[i]);
    uv_timer_stop(&n->tick);
    uv_close((uv_handle_t *)&n->tick, NULL);
    raft_close(&n->raft, node_raft_closed);
}

static void xfer_cb(struct raft_transfer *req)
{
    close_raft(req->data);
}

static void close_timer_cb(uv_timer_t *t)
{
    close_raft(t->data);
}

static void async_cb(uv_async_t *a)
{
    sl_cluster_node *n = a->data;
    item *it, *next;
    int stopping;

    pthread_mutex_lock(&n->mu);
    it = ipop_all(&n->inbox);
    stopping = n->stopping;
    pthread_mutex_unlock(&n->mu);
    for (; it; it = next) {
        next = it->next;
        if (stopping)
            done(n, it, SL_ERR_SHUTTING_DOWN, "the broker is stopping");
        else
            submit(n, it);
    }
    if (stopping && !uv_is_closing((uv_handle_t *)&n->async)) {
        uv_timer_stop(&n->tick);
        uv_close((uv_handle_t *)&n->async, NULL);
        /* The metadata leader hands the leadership to the most up-to-date
         * voter before it closes (controlled shutdown): the others need no
         * election timeout to go on. libraft calls back when the target
         * leads or after an election timeout; the timer is a backstop. */
        n->xfer.data = n;
        if (raft_state(&n->raft) == RAFT_LEADER &&
            raft_transfer(&n->raft, &n->xfer, 0, xfer_cb) == 0) {
            sl_log(SL_INFO, "cluster",
                   "stopping: handing the metadata "
                   "leadership over");
            uv_timer_start(&n->tick, close_timer_cb,
                           4 * (uint64_t)n->election_ms, 0);
        } else {
            close_raft(n);
        }
    }
}

static void *thread_main(void *arg)
{
    sl_cluster_node *n = arg;
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- start / stop (loop) ------------------------------------------------ */

static void node_free(sl_cluster_node *n)
{
    item *it, *next;
    if (n->loop_init) {
        /* after a failed start: close what was opened, let uv finish */
        if (n->raft_init)
            raft_close(&n->raft, node_raft_closed);
        else {
            if (n->io_init)
                raft_uv_close(&n->io);
            if (n->transport_init)
                raft_uv_tcp_close(&n->transport);
            sl_raft_auth_fini(&n->auth_transport);
        }
        if (!uv_is_closing((uv_handle_t *)&n->async))
            uv_close((uv_handle_t *)&n->async, NULL);
        if (!uv_is_closing((uv_handle_t *)&n->tick))
            uv_close((uv_handle_t *)&n->tick, NULL);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        uv_loop_close(&n->loop);
    }
    sl_meta_fsm_fini(&n->fsm);
    for (it = n->outbox.head; it; it = next) {
        next = it->next;
        item_free(it);
    }
    pthread_mutex_destroy(&n->mu);
    free(n->dir);
    free(n);
}

/* Why listening on addr ("IPv4:port") fails, found by trying it (libraft
 * reports only "I/O error"); NULL when it works or addr is not IPv4. */
static const char *listen_error(const char *addr)
{
    struct sockaddr_in sa;
    char host[64];
    const char *colon = strrchr(addr, ':');
    int fd, one = 1, e = 0;
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return NULL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return NULL;
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return strerror(errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0)
        e = errno;
    close(fd);
    return e ? strerror(e) : NULL;
}

sl_err sl_cluster_node_start(const sl_cluster_cfg *cfg, sl_cluster_node **out,
                             char *err, size_t errlen)
{
    sl_cluster_node *n = calloc(1, sizeof(*n));
    struct raft_configuration conf;
    struct raft_uv_transport *tr;
    int pi, rv;
    sl_err rc;

    if (!n)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&n->mu, NULL);
    sl_meta_fsm_init(&n->fsm);
    n->id = cfg->node_id;
    n->session_ms = cfg->session_ms;
    n->election_ms = cfg->election_ms;
    n->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 100;
    n->notify = cfg->notify;
    n->notify_arg = cfg->notify_arg;
    snprintf(n->listen, sizeof(n->listen), "%s", cfg->listen);
    snprintf(n->addr, sizeof(n->addr), "%s", cfg->addr ? cfg->addr : "");
    snprintf(n->stomp_addr, sizeof(n->stomp_addr), "%s",
             cfg->stomp_addr ? cfg->stomp_addr : "");
    snprintf(n->tls_addr, sizeof(n->tls_addr), "%s",
             cfg->tls_addr ? cfg->tls_addr : "");
    rc = sl_cluster_parse_peers(cfg->peers, n->peers, &n->npeers, err, errlen);
    if (rc != SL_OK)
        goto fail;
    pi = peer_index(n, n->id);
    if (pi < 0 || strcmp(n->peers[pi].addr, cfg->listen)) {
        snprintf(err, errlen,
                 "cluster-peers must list this node as %d@%s (the "
                 "cluster-listen address)",
                 (int)n->id, cfg->listen);
        rc = SL_ERR_INVALID_CONFIG;
        goto fail;
    }
    n->dir = strdup(cfg->dir);
    if (!n->dir || (mkdir(cfg->dir, 0755) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s: %s", cfg->dir,
                 strerror(errno));
        rc = SL_ERR_IO;
        goto fail;
    }
    rc = SL_ERR_UNKNOWN;
    if (uv_loop_init(&n->loop) != 0) {
        snprintf(err, errlen, "libuv: cannot create a loop");
        goto fail;
    }
    n->loop_init = 1;
    uv_async_init(&n->loop, &n->async, async_cb);
    n->async.data = n;
    uv_timer_init(&n->loop, &n->tick);
    n->tick.data = n;
    n->transport.data = NULL;
    if ((rv = raft_uv_tcp_init(&n->transport, &n->loop)) != 0) {
        snprintf(err, errlen, "raft transport: %s", raft_strerror(rv));
        goto fail;
    }
    n->transport_init = 1;
    tr = &n->transport;
    if (cfg->secret_len) { /* Raft connections prove the cluster secret */
        if (sl_raft_auth_init(&n->auth_transport, &n->transport, &n->loop,
                              cfg->secret, cfg->secret_len) != 0) {
            snprintf(err, errlen, "raft transport: out of memory");
            goto fail;
        }
        tr = &n->auth_transport;
    }
    if ((rv = raft_uv_init(&n->io, &n->loop, n->dir, tr)) != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", n->dir, n->io.errmsg);
        goto fail;
    }
    n->io_init = 1;
    n->io_start = n->io.start; /* note each message's arrival */
    n->io.start = io_start_hook;
    sl_lease_init(&n->lease, n->id, cfg->election_ms, cfg->heartbeat_ms,
                  cfg->session_ms);
    {
        int short_lease = 0;
        sl_lease_ms(cfg->election_ms, cfg->heartbeat_ms, cfg->session_ms,
                    &short_lease);
        sl_log(short_lease ? SL_WARN : SL_INFO, "cluster",
               "coordinator lease %lld ms (election %u ms, heartbeat %u ms, "
               "session %u ms)%s",
               (long long)n->lease.lease_ms, cfg->election_ms,
               cfg->heartbeat_ms, cfg->session_ms,
               short_lease ? ": shorter than its margins allow; raise "
                             "cluster-election-timeout-ms and "
                             "cluster-session-timeout-ms"
                           : "");
    }
    if ((rv = raft_init(&n->raft, &n->io, &n->fsm.fsm, (raft_id)n->id,
                        n->listen)) != 0) {
        snprintf(err, errlen, "raft: %s", raft_errmsg(&n->raft));
        goto fail;
    }
    n->raft_init = 1;
    n->raft.data = n;
    n->fsm.raft = &n->raft;
    n->fsm.on_apply = on_fsm_apply;
    n->fsm.on_restore = on_fsm_restore;
    n->fsm.arg = n;
    raft_configuration_init(&conf);
    for (size_t i = 0; i < n->npeers; i++)
        if (raft_configuration_add(&conf, (raft_id)n->peers[i].id,
                                   n->peers[i].addr, RAFT_VOTER) != 0) {
            raft_configuration_close(&conf);
            snprintf(err, errlen, "raft: cannot build the configuration");
            goto fail;
        }
    /* a node joining a running cluster (cluster-join) must not bootstrap:
     * its entry 1 would differ from the cluster's; it waits for the
     * leader, which sends it the log after `cluster add-node` */
    rv = cfg->join ? RAFT_CANTBOOTSTRAP : raft_bootstrap(&n->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        snprintf(err, errlen, "raft bootstrap in %s: %s", n->dir,
                 raft_errmsg(&n->raft));
        goto fail;
    }
    raft_set_election_timeout(&n->raft, cfg->election_ms);
    raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_ms);
    raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, 128);
    raft_set_pre_vote(&n->raft, true);
    if ((rv = raft_start(&n->raft)) != 0) {
        /* libraft leaves its own message empty when the transport fails
         * (a port in use): the io layer's, else the code's, names it */
        const char *why = raft_errmsg(&n->raft);
        if (!why || !why[0])
            why = n->io.errmsg[0] ? n->io.errmsg : listen_error(n->listen);
        if (!why)
            why = raft_strerror(rv);
        snprintf(err, errlen, "raft: cannot start on %s: %s", n->listen, why);
        goto fail;
    }
    n->start_index = raft_last_index(&n->raft);
    uv_timer_start(&n->tick, tick_cb, cfg->heartbeat_ms, cfg->heartbeat_ms);
    publish_status(n);
    if (pthread_create(&n->thr, NULL, thread_main, n) != 0) {
        snprintf(err, errlen, "cannot start the raft thread");
        goto fail;
    }
    n->thr_started = 1;
    sl_log(SL_INFO, "cluster", "node %d: raft on %s, %zu peer(s), dir %s",
           (int)n->id, n->listen, n->npeers, n->dir);
    *out = n;
    return SL_OK;
fail:
    node_free(n);
    return rc;
}

void sl_cluster_node_stop(sl_cluster_node *n)
{
    item *it, *next;
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = 1;
    pthread_mutex_unlock(&n->mu);
    uv_async_send(&n->async);
    pthread_join(n->thr, NULL);
    uv_loop_close(&n->loop);
    n->loop_init = 0;
    /* the thread is gone: whatever it left, complete now */
    pthread_mutex_lock(&n->mu);
    it = ipop_all(&n->outbox);
    pthread_mutex_unlock(&n->mu);
    for (; it; it = next) {
        next = it->next;
        if (it->kind == IT_DONE && it->fn)
            it->fn(it->arg, it->rc, it->msg);
        item_free(it);
    }
    node_free(n);
}

sl_err sl_cluster_propose(sl_cluster_node *n, const void *cmd, size_t len,
                          sl_cluster_done_fn fn, void *arg)
{
    item *it = calloc(1, sizeof(*it));
    if (!it || !(it->buf = malloc(len ? len : 1))) {
        free(it);
        return SL_ERR_NOMEM;
    }
    memcpy(it->buf, cmd, len);
    it->len = len;
    it->kind = IT_PROPOSE;
    it->fn = fn;
    it->arg = arg;
    pthread_mutex_lock(&n->mu);
    ipush(&n->inbox, it);
    pthread_mutex_unlock(&n->mu);
    uv_async_send(&n->async);
    return SL_OK;
}

size_t sl_cluster_drain(sl_cluster_node *n, sl_meta *image)
{
    item *it, *next;
    size_t changed = 0;
    uint64_t seq;

    pthread_mutex_lock(&n->mu);
    it = ipop_all(&n->outbox);
    seq = n->pushed;
    pthread_mutex_unlock(&n->mu);
    for (; it; it = next) {
        next = it->next;
        switch (it->kind) {
        case IT_APPLY:
            sl_meta_apply(image, it->index, it->buf, it->len);
            changed++;
            break;
        case IT_RESTORE:
            if (sl_meta_restore(image, it->buf, it->len) == SL_OK)
                changed++;
            break;
        default:
            if (it->fn)
                it->fn(it->arg, it->rc, it->msg);
        }
        item_free(it);
    }
    n->drained = seq; /* the lease may count on these now */
    return changed;
}

void sl_cluster_node_set_leaving(sl_cluster_node *n)
{
    pthread_mutex_lock(&n->mu);
    n->leaving = 1;
    pthread_mutex_unlock(&n->mu);
}

void sl_cluster_status_get(sl_cluster_node *n, sl_cluster_status *st)
{
    pthread_mutex_lock(&n->mu);
    *st = n->st;
    pthread_mutex_unlock(&n->mu);
}
