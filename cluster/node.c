/*
 * node.c - the metadata quorum member: libraft on its own thread and uv
 * loop, and the queues to the broker loop (see node.h for the design and
 * docs/cluster.md for why); the controller, failure detection and the
 * coordinator lease are in node_ctl.c, the struct both share in
 * node_int.h.
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

#include "cluster/node_int.h"
#include "cluster/raft_auth.h"
#include "protocol/log.h"

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

static int peer_index(const sl_cluster_node *n, int32_t id)
{
    for (size_t i = 0; i < n->npeers; i++)
        if (n->peers[i].id == id)
            return (int)i;
    return -1;
}

static void node_raft_closed(struct raft *r)
{
    sl_cluster_node *n = r->data;
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    sl_raft_auth_fini(&n->auth_transport);
}

static void tick_cb(uv_timer_t *t)
{
    sl_cluster_node *n = t->data;
    sl_node_controller(n);
    publish_status(n);
    sl_node_lease_update(n);
}

static void close_raft(sl_cluster_node *n)
{
    if (n->closing)
        return;
    n->closing = 1;
    for (size_t i = 0; i < n->nlive; i++)
        sl_node_probe_cancel(&n->live[i]);
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
    n->io.start = sl_node_io_start_hook;
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
