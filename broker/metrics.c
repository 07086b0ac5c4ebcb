/*
 * metrics.c - GET /metrics (metrics.h): Prometheus text format 0.0.4.
 *
 * Names follow Prometheus conventions: sluice_<what>_<unit>, counters end
 * in _total, durations in _seconds, sizes in _bytes. Labels: topic,
 * partition, group, api. Every family is gathered here, at scrape time,
 * from state its owner keeps anyway (partition offsets and sizes, per
 * partition byte counters bumped by the append and read paths, the
 * flusher's atomic histograms, the groups' counters); nothing on the
 * produce or consume path waits for or takes a lock for a scrape.
 * @thread loop
 */
#include "broker/conn.h"
#include "broker/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/json.h"
#include "broker/hist.h"
#include "broker/ops_groups.h"
#include "broker/stomp_frame.h"
#include "broker/topic.h"
#include "protocol/api.h"

static void family(struct evbuffer *o, const char *name, const char *type,
                   const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

/* Label values: escape backslash, quote and newline. */
static void lv(struct evbuffer *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(o, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(o, "\\n", 2);
        else
            evbuffer_add(o, s, 1);
    }
}

static void tp_sample(struct evbuffer *o, const char *name, const char *topic,
                      int32_t p, uint64_t v)
{
    evbuffer_add_printf(o, "%s{topic=\"", name);
    lv(o, topic);
    evbuffer_add_printf(o, "\",partition=\"%d\"} %" PRIu64 "\n", (int)p, v);
}

static void gt_sample(struct evbuffer *o, const char *name, const char *group,
                      const char *topic, double v)
{
    evbuffer_add_printf(o, "%s{group=\"", name);
    lv(o, group);
    evbuffer_add(o, "\",topic=\"", 9);
    lv(o, topic);
    evbuffer_add_printf(o, "\"} %.10g\n", v);
}

/* One histogram series: cumulative buckets (bounds in microseconds, -1 =
 * +Inf) rendered in seconds, then _sum and _count. label/value: one
 * label, or NULL for none. */
static void hist_series(struct evbuffer *o, const char *name, const char *label,
                        const char *value, const uint64_t *count, int nb,
                        const int64_t *bounds, uint64_t sum_us, uint64_t n)
{
    uint64_t cum = 0;
    char lbl[160] = "";
    if (label)
        snprintf(lbl, sizeof(lbl), "%s=\"%s\",", label, value);
    for (int i = 0; i < nb; i++) {
        cum += count[i];
        if (bounds[i] < 0)
            evbuffer_add_printf(o, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n",
                                name, lbl, cum);
        else
            evbuffer_add_printf(o, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name,
                                lbl, (double)bounds[i] * 1e-6, cum);
    }
    if (label)
        snprintf(lbl, sizeof(lbl), "{%s=\"%s\"}", label, value);
    evbuffer_add_printf(o, "%s_sum%s %.9g\n%s_count%s %" PRIu64 "\n", name, lbl,
                        (double)sum_us * 1e-6, name, lbl, n);
}

/* ---- partitions -------------------------------------------------------- */

static void partitions(sl_broker *b, struct evbuffer *o)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"sluice_partition_start_offset", "gauge",
         "First offset still stored (log start)."},
        {"sluice_partition_end_offset", "gauge",
         "Next offset to be assigned (log end)."},
        {"sluice_partition_durable_offset", "gauge",
         "Every offset below is fsynced."},
        {"sluice_partition_size_bytes", "gauge",
         "Bytes of record batches stored (segments, without indexes)."},
        {"sluice_partition_records_in_total", "counter",
         "Records appended since the broker started."},
        {"sluice_partition_bytes_in_total", "counter",
         "Batch bytes appended since the broker started."},
        {"sluice_partition_records_out_total", "counter",
         "Records handed to fetches and queue acquires (whole slices)."},
        {"sluice_partition_bytes_out_total", "counter",
         "Batch bytes handed to fetches and queue acquires."},
    };
    size_t n;
    sl_topic **all = sl_topics_sorted(b->topics, &n);
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        family(o, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < n; i++) {
            sl_topic *t = all[i];
            for (int32_t p = 0; p < t->nparts; p++) {
                sl_tpart *tp = t->parts[p];
                uint64_t v = 0, rr, rb;
                switch (f) {
                case 0:
                    v = (uint64_t)sl_part_start_offset(tp->part);
                    break;
                case 1:
                    v = (uint64_t)sl_part_end_offset(tp->part);
                    break;
                case 2:
                    v = (uint64_t)sl_part_durable_offset(tp->part);
                    break;
                case 3:
                    v = sl_part_size_bytes(tp->part, NULL);
                    break;
                case 4:
                    v = tp->records_in;
                    break;
                case 5:
                    v = tp->bytes_in;
                    break;
                default:
                    sl_part_read_stats(tp->part, &rr, &rb);
                    v = f == 6 ? rr : rb;
                    break;
                }
                tp_sample(o, fams[f].name, t->name, p, v);
            }
        }
    }
    family(o, "sluice_topics", "gauge", "Topics.");
    evbuffer_add_printf(o, "sluice_topics %zu\n", n);
    free(all);
}

/* ---- groups ------------------------------------------------------------- */

typedef struct qlist {
    char (*g)[2][256];
    size_t n, cap;
} qlist;

static void collect(void *arg, const char *group, const char *topic,
                    const char *dlq)
{
    qlist *l = arg;
    (void)dlq;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        void *nv = realloc(l->g, nc * sizeof(*l->g));
        if (!nv)
            return;
        l->g = nv;
        l->cap = nc;
    }
    snprintf(l->g[l->n][0], 256, "%s", group);
    snprintf(l->g[l->n][1], 256, "%s", topic);
    l->n++;
}

static void groups(sl_broker *b, struct evbuffer *o)
{
    sl_groups *g = sl_ops_groups(b);
    qlist l;
    sl_qgroup_summary *s;
    sl_groups_stats st;
    char **names = NULL;
    int *kinds = NULL;
    size_t ng = 0;
    int64_t now = sl_now_ms();
    static const char *const qf[][3] = {
        {"sluice_queue_ready_records", "gauge",
         "Records a consumer of the queue group could get now."},
        {"sluice_queue_in_flight_records", "gauge",
         "Records acquired and not settled (acquired)."},
        {"sluice_queue_delayed_records", "gauge",
         "Records available but not due (not-before, nack backoff)."},
        {"sluice_queue_backlog_records", "gauge",
         "Log end minus the group's start offset."},
        {"sluice_queue_consumers", "gauge", "Consumers of the queue group."},
        {"sluice_queue_oldest_ready_age_seconds", "gauge",
         "Age of the oldest ready record (0 when nothing is ready)."},
        {"sluice_queue_dead_lettered_records", "gauge",
         "Records of the group's dead-letter topic not yet redriven or "
         "purged."},
    };

    static const char *const cf[][2] = {
        {"sluice_queue_group_deliveries_total",
         "Records handed to consumers of the group, redeliveries included."},
        {"sluice_queue_group_redeliveries_total",
         "Records handed out again (a later attempt after a nack, release, "
         "lock expiry or consumer close)."},
        {"sluice_queue_group_acks_total", "Records acked."},
        {"sluice_queue_group_nacks_total", "Records nacked or released."},
        {"sluice_queue_group_rejects_total", "Records rejected."},
        {"sluice_queue_group_lock_expiries_total",
         "Acquisition locks that expired."},
        {"sluice_queue_group_dead_letters_total",
         "Records appended to the group's dead-letter topic."},
        {"sluice_queue_group_expired_total",
         "Records dropped or dead-lettered for their TTL."},
    };

    if (!g)
        return;
    memset(&l, 0, sizeof(l));
    sl_groups_qgroup_foreach(g, collect, &l);
    s = calloc(l.n + 1, sizeof(*s));
    if (s) {
        for (size_t i = 0; i < l.n; i++)
            if (sl_qgroup_summary_get(g, l.g[i][0], l.g[i][1], &s[i]) != SL_OK)
                s[i].consumers = -1;
        for (size_t f = 0; f < sizeof(qf) / sizeof(qf[0]); f++) {
            family(o, qf[f][0], qf[f][1], qf[f][2]);
            for (size_t i = 0; i < l.n; i++) {
                double v;
                if (s[i].consumers < 0)
                    continue;
                switch (f) {
                case 0:
                    v = (double)s[i].ready;
                    break;
                case 1:
                    v = (double)s[i].in_flight;
                    break;
                case 2:
                    v = (double)s[i].delayed;
                    break;
                case 3:
                    v = (double)s[i].backlog;
                    break;
                case 4:
                    v = (double)s[i].consumers;
                    break;
                case 5:
                    v = s[i].oldest_ready_ts >= 0 && now > s[i].oldest_ready_ts
                            ? (double)(now - s[i].oldest_ready_ts) / 1000.0
                            : 0;
                    break;
                default: {
                    sl_qgroup_cfg cfg;
                    char dlq[300], rg[320];
                    int64_t pend = 0;
                    sl_topic *t;
                    if (sl_qgroup_get_cfg(g, l.g[i][0], l.g[i][1], &cfg) !=
                            SL_OK ||
                        !strcmp(cfg.dlq_topic, "-"))
                        continue;
                    if (cfg.dlq_topic[0])
                        snprintf(dlq, sizeof(dlq), "%s", cfg.dlq_topic);
                    else
                        snprintf(dlq, sizeof(dlq), "%s.DLQ", l.g[i][1]);
                    snprintf(rg, sizeof(rg), "%s.redrive", dlq);
                    t = sl_topics_find(b->topics, dlq);
                    for (int32_t p = 0; t && p < t->nparts; p++) {
                        sl_part *pt = t->parts[p]->part;
                        int64_t st0 = sl_part_start_offset(pt);
                        int64_t e = sl_part_end_offset(pt);
                        int64_t h = sl_sgroup_committed(g, rg, dlq, p);
                        pend += e - (h > st0 ? (h < e ? h : e) : st0);
                    }
                    v = (double)pend;
                    break;
                }
                }
                gt_sample(o, qf[f][0], l.g[i][0], l.g[i][1], v);
            }
        }
        for (size_t f = 0; f < sizeof(cf) / sizeof(cf[0]); f++) {
            family(o, cf[f][0], "counter", cf[f][1]);
            for (size_t i = 0; i < l.n; i++) {
                const sl_qgroup_counters *c = &s[i].st;
                const uint64_t v[] = {c->deliveries,   c->redeliveries,
                                      c->acks,         c->nacks,
                                      c->rejects,      c->lock_expiries,
                                      c->dead_letters, c->expired};
                if (s[i].consumers < 0)
                    continue;
                gt_sample(o, cf[f][0], l.g[i][0], l.g[i][1], (double)v[f]);
            }
        }
        free(s);
    }
    free(l.g);

    /* stream groups: lag per partition */
    family(o, "sluice_stream_group_lag_records", "gauge",
           "Log end minus the committed offset, per partition.");
    if (sl_groups_list(g, &names, &kinds, &ng) == SL_OK) {
        for (size_t i = 0; i < ng; i++) {
            sl_group_info *gi = NULL;
            if (kinds[i] == 0 &&
                sl_groups_describe(g, names[i], &gi) == SL_OK &&
                gi->kind == 0) {
                for (size_t k = 0; k < gi->nparts; k++) {
                    evbuffer_add(o, "sluice_stream_group_lag_records{group=\"",
                                 39);
                    lv(o, gi->name);
                    evbuffer_add(o, "\",topic=\"", 9);
                    lv(o, gi->parts[k].topic);
                    evbuffer_add_printf(o, "\",partition=\"%d\"} %" PRId64 "\n",
                                        (int)gi->parts[k].partition,
                                        gi->parts[k].lag);
                }
            }
            sl_group_info_free(gi);
            free(names[i]);
        }
        free(names);
        free(kinds);
    }

    /* broker-wide queue counters (the groups keep them) */
    sl_groups_stats_get(g, &st);
    family(o, "sluice_queue_deliveries_total", "counter",
           "Queue records handed to consumers (redeliveries included).");
    evbuffer_add_printf(o, "sluice_queue_deliveries_total %" PRIu64 "\n",
                        st.deliveries);
    family(o, "sluice_queue_acks_total", "counter", "Queue records acked.");
    evbuffer_add_printf(o, "sluice_queue_acks_total %" PRIu64 "\n", st.acks);
    family(o, "sluice_queue_nacks_total", "counter",
           "Queue records released or nacked.");
    evbuffer_add_printf(o, "sluice_queue_nacks_total %" PRIu64 "\n",
                        st.releases);
    family(o, "sluice_queue_rejects_total", "counter",
           "Queue records rejected.");
    evbuffer_add_printf(o, "sluice_queue_rejects_total %" PRIu64 "\n",
                        st.rejects);
    family(o, "sluice_queue_lock_expiries_total", "counter",
           "Acquisition locks that expired (the record is redelivered).");
    evbuffer_add_printf(o, "sluice_queue_lock_expiries_total %" PRIu64 "\n",
                        st.lock_expiries);
    family(o, "sluice_queue_dead_letters_total", "counter",
           "Records appended to dead-letter topics.");
    evbuffer_add_printf(o, "sluice_queue_dead_letters_total %" PRIu64 "\n",
                        st.dlq_appends);
    family(o, "sluice_groups_commits_total", "counter",
           "SQLite transactions committed to groups.db.");
    evbuffer_add_printf(o, "sluice_groups_commits_total %" PRIu64 "\n",
                        st.txns);
    {
        static const int64_t cb[] = SL_GROUPS_COMMIT_BUCKETS_US;
        sl_groups_hist h;
        sl_groups_commit_hist(g, &h);
        family(o, "sluice_groups_commit_duration_seconds", "histogram",
               "Time of one groups.db (SQLite) commit: BEGIN to COMMIT of a "
               "round of queue and offset changes.");
        hist_series(o, "sluice_groups_commit_duration_seconds", NULL, NULL,
                    h.count, SL_GROUPS_HIST_NB, cb, h.sum_us, h.n);
    }
}

/* ---- flusher ------------------------------------------------------------ */

static void histogram(struct evbuffer *o, const char *name, const char *help,
                      const sl_flusher_hist *h, const int64_t *bounds,
                      double scale)
{
    uint64_t cum = 0;
    family(o, name, "histogram", help);
    for (int i = 0; i < SL_FLUSHER_NBUCKETS; i++) {
        cum += h->count[i];
        if (bounds[i] < 0)
            evbuffer_add_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name,
                                cum);
        else
            evbuffer_add_printf(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                                (double)bounds[i] * scale, cum);
    }
    evbuffer_add_printf(o, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name,
                        (double)h->sum * scale, name, h->n);
}

static void flusher(sl_broker *b, struct evbuffer *o)
{
    static const int64_t sb[] = SL_FLUSHER_SYNC_BUCKETS_US;
    static const int64_t zb[] = SL_FLUSHER_SIZE_BUCKETS;
    sl_flusher_hist hs, hz;
    if (!b->flusher)
        return;
    sl_flusher_hists(b->flusher, &hs, &hz);
    histogram(o, "sluice_fsync_duration_seconds",
              "Time of the fdatasyncs of one group-commit round.", &hs, sb,
              1e-6);
    histogram(o, "sluice_group_commit_size",
              "Appends covered by one fsync round (flush=always topics).", &hz,
              zb, 1);
    family(o, "sluice_fsync_rounds_total", "counter", "Group-commit rounds.");
    evbuffer_add_printf(o, "sluice_fsync_rounds_total %" PRIu64 "\n",
                        sl_flusher_rounds(b->flusher));
    family(o, "sluice_fsyncs_total", "counter", "fdatasync calls.");
    evbuffer_add_printf(o, "sluice_fsyncs_total %" PRIu64 "\n",
                        sl_flusher_syncs(b->flusher));
    family(o, "sluice_fsync_inline_rounds_total", "counter",
           "Rounds the event loop ran itself (flush-inline-us).");
    evbuffer_add_printf(o, "sluice_fsync_inline_rounds_total %" PRIu64 "\n",
                        sl_flusher_inline_rounds(b->flusher));
}

/* ---- process and connections -------------------------------------------- */

static void connections(sl_broker *b, struct evbuffer *o)
{
    static const char *const fams[][3] = {
        {"sluice_connections", "gauge", "Open connections by protocol."},
        {"sluice_connections_opened_total", "counter",
         "Connections accepted since the start, by protocol."},
        {"sluice_network_received_bytes_total", "counter",
         "Bytes read from clients, by protocol."},
        {"sluice_network_sent_bytes_total", "counter",
         "Bytes queued to clients, by protocol."},
    };
    sl_conn_totals t[SL_LISTENER_N];
    for (int l = 0; l < SL_LISTENER_N; l++)
        sl_conn_totals_get(b, (enum sl_listener)l, &t[l]);
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        family(o, fams[f][0], fams[f][1], fams[f][2]);
        for (int l = 0; l < SL_LISTENER_N; l++) {
            const sl_conn_ops *ops = sl_conn_proto_ops(b, (enum sl_listener)l);
            uint64_t v = f == 0   ? t[l].open
                         : f == 1 ? t[l].accepted
                         : f == 2 ? t[l].bytes_in
                                  : t[l].bytes_out;
            if (ops)
                evbuffer_add_printf(
                    o, "%s{protocol=\"%s\"} %" PRIu64 "\n", fams[f][0],
                    sl_conn_listener_name((enum sl_listener)l), v);
        }
    }
}

static void stomp(sl_broker *b, struct evbuffer *o)
{
    static const int64_t lb[] = SL_LAT_BUCKETS_US;
    if (!sl_conn_proto_ops(b, SL_LISTENER_STOMP))
        return;
    family(o, "sluice_stomp_frames_total", "counter",
           "STOMP frames by command: in = from clients (handled), out = "
           "sent (MESSAGE, RECEIPT, ERROR, CONNECTED).");
    for (int k = 1; k < SL_STOMP_CMD__END; k++) {
        int in = k < SL_STOMP_CONNECTED;
        evbuffer_add_printf(o,
                            "sluice_stomp_frames_total{command=\"%s\","
                            "direction=\"%s\"} %" PRIu64 "\n",
                            sl_stomp_cmd_name(k), in ? "in" : "out",
                            in ? b->stomp_frames[k] : b->stomp_frames_out[k]);
    }
    family(o, "sluice_stomp_frame_duration_seconds", "histogram",
           "Time parsing and handling a client STOMP frame took on the "
           "broker's loop (not the wait for a receipt's fsync), by command.");
    for (int k = 1; k < SL_STOMP_CONNECTED; k++)
        hist_series(o, "sluice_stomp_frame_duration_seconds", "command",
                    sl_stomp_cmd_name(k), b->stomp_lat[k].count, SL_LAT_NB, lb,
                    b->stomp_lat[k].sum_us, b->stomp_lat[k].n);
}

static void process(sl_broker *b, struct evbuffer *o)
{
    FILE *f;
    long pages = 0, rss = 0;
    size_t nfd = 0;
    DIR *d;
    struct rusage ru;

    family(o, "sluice_build_info", "gauge", "Broker version (always 1).");
    evbuffer_add_printf(o, "sluice_build_info{version=\"%s\"} 1\n",
                        SL_BROKER_VERSION);
    family(o, "sluice_start_time_seconds", "gauge",
           "When the broker started (seconds since the epoch).");
    evbuffer_add_printf(o, "sluice_start_time_seconds %.3f\n",
                        (double)b->started_ms / 1000.0);
    f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    family(o, "sluice_process_resident_memory_bytes", "gauge",
           "Resident set size.");
    evbuffer_add_printf(o, "sluice_process_resident_memory_bytes %lld\n",
                        (long long)rss * sysconf(_SC_PAGESIZE));
    d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            nfd++;
        closedir(d);
        nfd = nfd > 3 ? nfd - 3 : 0; /* ., .. and the directory's own fd */
    }
    family(o, "sluice_process_open_fds", "gauge", "Open file descriptors.");
    evbuffer_add_printf(o, "sluice_process_open_fds %zu\n", nfd);
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        family(o, "sluice_process_cpu_seconds_total", "counter",
               "User and system CPU time.");
        evbuffer_add_printf(
            o, "sluice_process_cpu_seconds_total %.6f\n",
            (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
    connections(b, o);
    family(o, "sluice_requests_total", "counter",
           "Binary-protocol requests dispatched, per API.");
    for (uint16_t k = 0; k < SL_API__MAX; k++)
        if (b->apis[k].fn)
            evbuffer_add_printf(
                o, "sluice_requests_total{api=\"%s\"} %" PRIu64 "\n",
                sl_api_name(k), b->api_requests[k]);
    {
        static const int64_t lb[] = SL_LAT_BUCKETS_US;
        family(o, "sluice_request_duration_seconds", "histogram",
               "Binary-protocol requests, per API: from dispatch until the "
               "answer goes to the socket (a durable produce includes its "
               "fsync, a long poll its wait).");
        for (uint16_t k = 0; k < SL_API__MAX; k++)
            if (b->apis[k].fn)
                hist_series(o, "sluice_request_duration_seconds", "api",
                            sl_api_name(k), b->api_lat[k].count, SL_LAT_NB, lb,
                            b->api_lat[k].sum_us, b->api_lat[k].n);
    }
    stomp(b, o);
    family(o, "sluice_up", "gauge", "1 while serving, 0 while stopping.");
    evbuffer_add_printf(o, "sluice_up %d\n", !b->stopping);
}

/* ---- cluster ------------------------------------------------------------- */

typedef struct cpart_ctx {
    struct evbuffer *o;
    int f; /* which family */
} cpart_ctx;

static void cluster_part(void *arg, const char *topic, int32_t partition,
                         int32_t leader, int32_t replicas, int32_t in_sync)
{
    static const char *const names[] = {"sluice_partition_leader",
                                        "sluice_partition_replicas",
                                        "sluice_partition_in_sync_replicas"};
    cpart_ctx *x = arg;
    int32_t v = x->f == 0 ? leader : x->f == 1 ? replicas : in_sync;
    evbuffer_add_printf(x->o, "%s{topic=\"", names[x->f]);
    lv(x->o, topic);
    evbuffer_add_printf(x->o, "\",partition=\"%d\"} %d\n", (int)partition,
                        (int)v);
}

static void cluster(sl_broker *b, struct evbuffer *o)
{
    static const char *const roles[] = {"unavailable", "follower", "candidate",
                                        "leader"};
    static const char *const pf[][2] = {
        {"sluice_partition_leader",
         "Node id leading the partition (-1: offline), cluster mode."},
        {"sluice_partition_replicas", "Replicas of the partition."},
        {"sluice_partition_in_sync_replicas",
         "Replicas in sync (ISR) with the partition's leader."},
    };
    sl_bcluster_stats st;
    cpart_ctx x = {o, 0};
    if (sl_bcluster_stats_get(b, &st) != 0)
        return;
    family(o, "sluice_cluster_role", "gauge",
           "This node's role in the metadata quorum (1 for the current "
           "one).");
    for (int r = 0; r < 4; r++)
        evbuffer_add_printf(o, "sluice_cluster_role{role=\"%s\"} %d\n",
                            roles[r], st.role == r);
    family(o, "sluice_cluster_node_id", "gauge", "This node's id.");
    evbuffer_add_printf(o, "sluice_cluster_node_id %d\n", (int)st.node_id);
    family(o, "sluice_cluster_metadata_leader", "gauge",
           "Node id of the metadata leader (0: none known).");
    evbuffer_add_printf(o, "sluice_cluster_metadata_leader %d\n",
                        (int)st.leader_id);
    family(o, "sluice_cluster_term", "gauge", "Raft term.");
    evbuffer_add_printf(o, "sluice_cluster_term %" PRIu64 "\n", st.term);
    family(o, "sluice_cluster_applied_index", "gauge",
           "Index of the last metadata command applied here.");
    evbuffer_add_printf(o, "sluice_cluster_applied_index %" PRIu64 "\n",
                        st.applied);
    family(o, "sluice_cluster_nodes", "gauge", "Nodes in the metadata.");
    evbuffer_add_printf(o, "sluice_cluster_nodes %" PRId64 "\n", st.nodes);
    family(o, "sluice_cluster_nodes_up", "gauge", "Nodes not fenced.");
    evbuffer_add_printf(o, "sluice_cluster_nodes_up %" PRId64 "\n",
                        st.nodes_up);
    family(o, "sluice_cluster_partitions_led", "gauge",
           "Partitions this node leads.");
    evbuffer_add_printf(o, "sluice_cluster_partitions_led %" PRId64 "\n",
                        st.partitions_led);
    family(o, "sluice_cluster_partitions_offline", "gauge",
           "Partitions without a leader.");
    evbuffer_add_printf(o, "sluice_cluster_partitions_offline %" PRId64 "\n",
                        st.partitions_offline);
    family(o, "sluice_cluster_partitions_under_replicated", "gauge",
           "Partitions with fewer in-sync replicas than replicas.");
    evbuffer_add_printf(
        o, "sluice_cluster_partitions_under_replicated %" PRId64 "\n",
        st.partitions_under_replicated);
    family(o, "sluice_replica_fetched_bytes_total", "counter",
           "Bytes of records this node copied from partition leaders as a "
           "follower.");
    evbuffer_add_printf(o, "sluice_replica_fetched_bytes_total %" PRId64 "\n",
                        st.replica_fetched_bytes);
    family(o, "sluice_reassign_copied_bytes_total", "counter",
           "Of those, bytes copied for reassignments adding this node "
           "(not in sync yet).");
    evbuffer_add_printf(o, "sluice_reassign_copied_bytes_total %" PRId64 "\n",
                        st.reassign_copied_bytes);
    for (x.f = 0; x.f < 3; x.f++) {
        family(o, pf[x.f][0], "gauge", pf[x.f][1]);
        sl_bcluster_foreach_part(b, cluster_part, &x);
    }
}

void sl_metrics_render(sl_broker *b, struct evbuffer *out)
{
    process(b, out);
    partitions(b, out);
    groups(b, out);
    flusher(b, out);
    cluster(b, out);
}
