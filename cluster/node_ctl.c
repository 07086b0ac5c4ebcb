/*
 * node_ctl.c - the metadata quorum member's controller (node.h, "The
 * controller"), on the Raft thread: registration, fencing from each
 * member's liveness (heard, seen, refused probes), a wiped voter made a
 * standby and promoted again, reassignments completed; as a follower, a
 * silent leader probed; and the coordinator lease (cluster/lease.c) fed
 * from every Raft message and published every tick. node.c runs the
 * thread and calls in here from its tick and its io.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cluster/node_int.h"
#include "protocol/log.h"

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
        /* every entry before the barrier applied and is in the outbox:
         * once the loop drained this far, its copy may answer reads */
        pthread_mutex_lock(&n->mu);
        n->ready_term = n->barrier_term;
        n->ready_seq = n->pushed;
        pthread_mutex_unlock(&n->mu);
        if (n->notify)
            n->notify(n->notify_arg);
        sl_log(SL_INFO, "cluster", "node %d is the metadata leader (term %llu)",
               (int)n->id, (unsigned long long)n->barrier_term);
    }
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

int sl_node_io_start_hook(struct raft_io *io, unsigned msecs,
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
void sl_node_probe_cancel(struct live *l)
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
        sl_node_probe_cancel(l);
        return 0;
    }
    if (l->refused >= 2)
        return 1;
    if (l->probe && now - l->probe->start > 4 * (uint64_t)n->heartbeat_ms)
        sl_node_probe_cancel(l); /* no answer at all: not a refusal */
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

void sl_node_controller(sl_cluster_node *n)
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
                sl_node_probe_cancel(&n->live[i]);
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

/* ---- the coordinator lease (cluster/lease.c) ---------------------------- */

/* Every tick: the lease from what lease_recv noted, published (with the
 * outbox position it counts on) for sl_cluster_lease_valid. */
void sl_node_lease_update(sl_cluster_node *n)
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

int sl_cluster_leader_ready(sl_cluster_node *n)
{
    int ok;
    uint64_t seq;
    pthread_mutex_lock(&n->mu);
    ok = n->st.role == 3 && n->ready_term == n->st.term;
    seq = n->ready_seq;
    pthread_mutex_unlock(&n->mu);
    return ok && n->drained >= seq;
}

int64_t sl_cluster_lease_ms(sl_cluster_node *n)
{
    return n->lease.lease_ms;
}
