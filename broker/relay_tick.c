/*
 * relay_tick.c - cluster: the relay follows the metadata image.
 *
 * A tick (RELAY_TICK_MS) follows the image:
 *
 *  - a subscription whose coordinator moved (a leader change of that
 *    partition, a failover) moves with it: the old session is closed (the
 *    coordinator releases what it held, attempts kept) or the local
 *    consumer freed, and the subscription is opened at the new home,
 *    relayed or local. The same happens to a local /queue subscription on
 *    a node that stops coordinating its group;
 *  - a lost session (EOF, ERROR, no heart-beat for 3 intervals, no
 *    CONNECTED within RELAY_CONNECT_MS) is opened again after a backoff
 *    (RELAY_BACKOFF_MIN_MS doubling to RELAY_BACKOFF_MAX_MS);
 *  - a relay session on this node whose group this node no longer
 *    coordinates gets an ERROR and is closed, so its node moves it;
 *  - our heart-beat to the coordinator (a newline every
 *    RELAY_HB_OUT_MS / 4): the CONNECT asks it to close a session silent
 *    for 1.5 RELAY_HB_OUT_MS, so a session whose node was cut off or
 *    stopped leaves the group there, and what it held is delivered
 *    again, within 3 s (TCP alone took about 15 minutes);
 *  - a client that is going (EOF, DISCONNECT) keeps its relay sessions
 *    until the receipts of its ACKs are answered: they are still read
 *    and watched (a lost one fails its receipts), never opened again.
 *
 * At the coordinator, a relay session names itself in its CONNECT: the
 * relaying process (sluice-relay-epoch, larger for each process of the
 * node, even when the clock went back: relay_epoch_next), the client
 * subscription it carries (sluice-relay-session: the client's session,
 * the partition, the subscription id) and the how-manieth session that
 * process opened (sluice-relay-seq). A new session from the same node
 * replaces, at once, every open one of an older process of that node and
 * the older ones of the same subscription (stomp_relay_replace): they
 * are closed, and what they held is delivered again as after a clean
 * close. Before, a session whose node lost its link and opened a new one
 * stayed until its heart-beats timed out (up to 3 s), holding its
 * deliveries; a session older than one still open is refused.
 *
 * @thread loop (everything here)
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/group_state.h"
#include "broker/peer_auth.h"
#include "broker/relay_int.h"
#include "broker/stomp_int.h"
#include "cluster/meta.h"
#include "storage/fsutil.h"

/* ---- the tick: follow the coordinators ---------------------------------- */

/* Move s to want (0 here, N relayed to node N). */
static void rehome(stomp_sub *s, int32_t want)
{
    char why[512];
    sl_err rc;
    int32_t was = s->relay ? s->relay->node : 0;
    stomp_sub_unhome(s);
    if (want == 0)
        rc = stomp_sub_open_local(s, why, sizeof(why));
    else
        rc = stomp_relay_open(s, want);
    if (rc == SL_OK) {
        sl_log(SL_INFO, RELAY_SUBSYS,
               "subscription %s of session %s (queue group %s on %s) moves "
               "from node %d to node %d, its coordinator now",
               s->id, s->c->session, s->group, s->qtopic,
               (int)(was ? was : (int32_t)s->c->s->b->cfg.node_id),
               (int)(want ? want : (int32_t)s->c->s->b->cfg.node_id));
        s->home_warned = 0;
        stomp_sub_pump(s);
    } else if (!s->home_warned) {
        if (want != 0)
            snprintf(why, sizeof(why), "%s", sl_strerror(rc));
        sl_log(SL_WARN, RELAY_SUBSYS,
               "subscription %s of session %s (queue group %s on %s): "
               "cannot open it at node %d: %s; trying again",
               s->id, s->c->session, s->group, s->qtopic, (int)want, why);
        s->home_warned = 1;
    }
}

/* Retry a lost session (not for a client that is going: it would only
 * take deliveries nobody reads), give up on a silent one, send our
 * heart-beat. */
static void rl_check(stomp_relay *rl, int64_t now, int closing)
{
    if (rl->state == RL_DOWN) {
        if (!closing && now >= rl->retry_at)
            rl_connect(rl);
        return;
    }
    if (closing && rl->paused && rl->bev) {
        /* its RECEIPTs are read whatever the client's output holds */
        rl->paused = 0;
        rl->last_in = now;
        bufferevent_enable(rl->bev, EV_READ);
        rl_input(rl);
        if (rl->state == RL_DOWN)
            return;
    }
    if (rl->state != RL_UP) {
        if (now - rl->since > RELAY_CONNECT_MS) {
            rl_fail(rl, "no answer to CONNECT and SUBSCRIBE");
            return;
        }
    } else if (rl->hb_ms > 0 && !rl->paused &&
               now - rl->last_in > 3 * rl->hb_ms + 1000) {
        rl_fail(rl, "no heart-beat");
        return;
    }
    /* CONNECT is out (SUBSCRIBING, UP): a newline between frames when
     * the output is empty (a full one waits for the coordinator, which
     * does not count silence while it is not reading) */
    if (rl->bev && rl->state >= RL_SUBSCRIBING &&
        now - rl->last_hb >= RELAY_HB_OUT_MS / 4 &&
        evbuffer_get_length(bufferevent_get_output(rl->bev)) == 0) {
        bufferevent_write(rl->bev, "\n", 1);
        rl->last_hb = now;
    }
}

static void tick_sub(stomp_sub *s, int64_t now)
{
    stomp_srv *srv = s->c->s;
    stomp_relay *rl = s->relay;
    int32_t want = stomp_relay_coordinator(srv, s->group, s->qtopic);
    int32_t cur = rl ? rl->node : (s->qc ? 0 : -2);
    if (want >= 0 && want != cur) {
        rehome(s, want);
        return;
    }
    if (rl)
        rl_check(rl, now, 0);
}

/* A client that is going (EOF, DISCONNECT) keeps its relays until the
 * receipts it is owed are answered: they are read (rl_input) and
 * watched (lost: the receipts fail and the connection closes, and with
 * it the sessions), never opened again nor moved. */
static void tick_closing(stomp_conn *c, int64_t now)
{
    for (stomp_sub *s = c->subs; s; s = s->next)
        for (stomp_relay *rl = s->relay, *rn; rl; rl = rn) {
            rn = rl->next;
            rl_check(rl, now, 1);
        }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    stomp_srv *srv = arg;
    int64_t now = sl_now_ms();
    stomp_conn *c, *cn;
    (void)fd;
    (void)what;
    if (!sl_bcluster_image(srv->b) || !srv_groups(srv))
        return;
    for (c = srv->conns; c; c = cn) {
        stomp_sub *s;
        cn = c->next;
        if (!c->connected)
            continue;
        if (conn_closing(c)) {
            if (!c->relay_from)
                tick_closing(c, now);
            continue;
        }
        for (s = c->subs; s; s = s->next) {
            if (c->relay_from) {
                int32_t want;
                char why[300];
                if (!s->queue || !s->group)
                    continue;
                want = stomp_relay_coordinator(srv, s->group, s->qtopic);
                if (want == 0)
                    continue;
                snprintf(why, sizeof(why),
                         "node %d no longer coordinates queue group %s on "
                         "%s",
                         (int)srv->b->cfg.node_id, s->group, s->qtopic);
                stomp_send_error(c, NULL, "not the coordinator", why);
                break;
            }
            if (s->homeable)
                tick_sub(s, now);
            else if (s->topic_relay) {
                stomp_relay *rl;
                rl_topic_follow(s, NULL, now);
                for (rl = s->relay; rl; rl = rl->next)
                    rl_check(rl, now, 0);
            }
        }
    }
}

/* ---- the coordinator's side: a relay session replaces older ones ------- */

/* Is o, a relay session of c's node, older than c (1), newer (-1), or
 * neither (0: another client subscription of the same process)? */
static int relay_older(const stomp_conn *o, const stomp_conn *c)
{
    if (o->relay_epoch != c->relay_epoch)
        return o->relay_epoch < c->relay_epoch ? 1 : -1;
    if (!o->relay_key || !c->relay_key || strcmp(o->relay_key, c->relay_key))
        return 0;
    return o->relay_seq < c->relay_seq   ? 1
           : o->relay_seq > c->relay_seq ? -1
                                         : 0;
}

int stomp_relay_replace(stomp_conn *c)
{
    stomp_srv *srv = c->s;
    stomp_conn *o;
    if (!c->relay_epoch)
        return 0; /* a node that names none (an older version) */
    for (o = srv->conns; o; o = o->next) {
        int older;
        if (o == c || o->relay_from != c->relay_from || !o->relay_epoch ||
            !o->connected || conn_closing(o))
            continue;
        older = relay_older(o, c);
        if (older < 0) {
            char why[300];
            snprintf(why, sizeof(why),
                     "node %d already has a newer relay session here "
                     "(session %s)",
                     (int)c->relay_from, o->session);
            sl_log(SL_INFO, RELAY_SUBSYS, "peer %s: refused: %s", c->peer, why);
            stomp_send_error(c, NULL, "superseded", why);
            return -1;
        }
        if (older == 0)
            continue;
        /* what it holds is released now, as when it closes cleanly,
         * not after its heart-beats time out (issue 14) */
        sl_log(SL_INFO, RELAY_SUBSYS,
               "relay session %s of node %d (%s) is replaced by session %s "
               "from %s: closing it",
               o->session, (int)o->relay_from,
               o->relay_epoch < c->relay_epoch ? "a previous process of it"
                                               : "the same subscription",
               c->session, c->peer);
        sl_conn_abort(o->conn, "replaced by a new relay session");
    }
    return 0;
}

/*
 * This process's relay epoch: larger than every earlier process's of this
 * node, whatever the clock says. A coordinator refuses a session whose
 * epoch is below an open one of the same node (stomp_relay_replace), so
 * an epoch taken from the clock alone, after the clock went back across a
 * restart, had the new process's sessions refused until the old ones'
 * heart-beats timed out (up to 3 s; forever for a session that asked for
 * none). The epoch is the wall clock in ms or, when that is not above it,
 * the last epoch + 1, written durably to DATA/relay-epoch before any
 * session uses it. A wiped data directory falls back to the clock, as
 * producer ids do (producer_id.c). SLUICE_TEST_RELAY_EPOCH_CLOCK_MS (a
 * test hook) is read as the clock.
 */
#define RELAY_EPOCH_FILE "relay-epoch"

static int64_t relay_epoch_next(sl_broker *b)
{
    char path[PATH_MAX], text[64];
    const char *fake = getenv("SLUICE_TEST_RELAY_EPOCH_CLOCK_MS");
    int64_t now = fake ? (int64_t)strtoll(fake, NULL, 10) : sl_now_ms();
    long long last = 0;
    int n;
    sl_err rc;
    FILE *f;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", b->cfg.data,
                         RELAY_EPOCH_FILE) >= sizeof(path))
        return now;
    if ((f = fopen(path, "r"))) {
        if (fscanf(f, "%lld", &last) != 1 || last < 0) {
            sl_log(SL_WARN, RELAY_SUBSYS,
                   "%s unreadable: the relay epoch is the clock's", path);
            last = 0;
        }
        fclose(f);
    }
    if (now <= last)
        now = (int64_t)last + 1;
    n = snprintf(text, sizeof(text), "%lld\n", (long long)now);
    rc = sl_fs_write_durable(path, text, (size_t)n);
    if (rc != SL_OK)
        sl_log(SL_WARN, RELAY_SUBSYS,
               "cannot write %s: %s (a restart may reuse this relay epoch "
               "if the clock goes back)",
               path, sl_strerror(rc));
    sl_log(SL_DEBUG, RELAY_SUBSYS, "relay epoch %lld (the last was %lld)",
           (long long)now, last);
    return now;
}

sl_err stomp_relay_init(stomp_srv *srv)
{
    struct timeval tv = {0, RELAY_TICK_MS * 1000};
    if (srv->b->cfg.node_id == 0)
        return SL_OK; /* a single node: everything is served here */
    srv->relay_epoch = relay_epoch_next(srv->b);
    srv->relay_tick = event_new(srv->b->base, -1, EV_PERSIST, tick_cb, srv);
    if (!srv->relay_tick)
        return SL_ERR_NOMEM;
    event_add(srv->relay_tick, &tv);
    return SL_OK;
}

void stomp_relay_fini(stomp_srv *srv)
{
    sl_wb_fini(&srv->relay_out);
    if (srv->relay_tick)
        event_free(srv->relay_tick);
    srv->relay_tick = NULL;
}
