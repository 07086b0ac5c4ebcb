/*
 * cmd_data.c - `sluice produce`, `sluice consume` and `sluice queue`
 * (docs/cli.md): records in and out of topics and queue groups.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "protocol/parse.h"
#include "sluice.h"

/* ---- produce ---------------------------------------------------------- */

typedef struct produce_state {
    size_t ok, failed;
    sluice_err first_err;
    char first_msg[256];
} produce_state;

static void on_delivery(const sluice_delivery *d, void *opaque)
{
    produce_state *st = opaque;
    if (d->err == SLUICE_OK) {
        st->ok++;
        return;
    }
    if (st->failed++ == 0) {
        st->first_err = d->err;
        snprintf(st->first_msg, sizeof(st->first_msg),
                 "topic '%s' partition %d: %s", d->topic, (int)d->partition,
                 sluice_strerror(d->err));
    }
}

int cmd_produce(int argc, char **argv)
{
    const char *topic = NULL, *sep = NULL;
    int64_t partition = SLUICE_PARTITION_ANY;
    sluice_header hdrs[64];
    size_t nhdrs = 0;
    produce_state st;
    sluice_producer *p = NULL;
    char errstr[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    sluice_err err;
    int rc = EX_OK, i;

    memset(&st, 0, sizeof(st));
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key-separator")) {
            sep = cli_optval(argc, argv, &i);
            if (!sep || !*sep)
                return cli_die_usage("--key-separator needs a non-empty value");
        } else if (!strcmp(argv[i], "--acks")) {
            const char *v = cli_optval(argc, argv, &i);
            if (!v ||
                sluice_conf_set(g_conf, "acks", v, errstr, sizeof(errstr)))
                return cli_die_usage("--acks needs none, written or durable");
        } else if (!strcmp(argv[i], "--partition")) {
            const char *v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &partition) || partition < 0 ||
                partition > INT32_MAX)
                return cli_die_usage("--partition needs a number >= 0");
        } else if (!strcmp(argv[i], "--header")) {
            const char *v = cli_optval(argc, argv, &i);
            const char *eq;
            if (!v || !(eq = strchr(v, '=')) || eq == v)
                return cli_die_usage("--header needs key=value");
            if (nhdrs == sizeof(hdrs) / sizeof(hdrs[0]))
                return cli_die_usage("too many --header options");
            hdrs[nhdrs].key = v;
            hdrs[nhdrs].key_len = (size_t)(eq - v);
            hdrs[nhdrs].value = eq + 1;
            hdrs[nhdrs].value_len = strlen(eq + 1);
            nhdrs++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_die_usage("produce: unknown option '%s'", argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return cli_die_usage("produce: unexpected argument '%s'", argv[i]);
        }
    }
    if (!topic)
        return cli_die_usage("produce: missing topic");
    sluice_conf_set_delivery_cb(g_conf, on_delivery, &st);
    err = sluice_producer_new(g_conf, &p, errstr, sizeof(errstr));
    if (err)
        return cli_fail_new(err, errstr);
    while (!g_stop && (n = getline(&line, &cap, stdin)) >= 0) {
        const char *key = NULL, *val = line;
        size_t klen = 0, vlen;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        vlen = (size_t)n;
        if (sep) {
            char *s = strstr(line, sep);
            if (s) {
                key = line;
                klen = (size_t)(s - line);
                val = s + strlen(sep);
                vlen = (size_t)n - klen - strlen(sep);
            }
        }
        err = sluice_producer_send(p, topic, (int32_t)partition, key, klen, val,
                                   vlen, nhdrs ? hdrs : NULL, nhdrs, 0, NULL);
        if (err) {
            rc = cli_fail(err, "produce");
            break;
        }
        sluice_producer_poll(p, 0);
    }
    free(line);
    err = sluice_producer_flush(p, -1);
    if (err && rc == EX_OK)
        rc = cli_fail(err, "produce flush");
    if (st.failed && rc == EX_OK) {
        fprintf(stderr, "sluice: produce: %zu of %zu records not stored: %s\n",
                st.failed, st.failed + st.ok, st.first_msg);
        rc = cli_exit_for(st.first_err);
    }
    sluice_producer_free(p);
    return rc;
}

/* ---- consume ---------------------------------------------------------- */

typedef struct endmark {
    char *topic;
    int32_t partition;
    int64_t end; /* stop when position reaches it */
    int done;
} endmark;

int cmd_consume(int argc, char **argv)
{
    const char *topic = NULL, *group = NULL;
    int64_t start = SLUICE_OFFSET_END, partition = -1, count = -1, ts = -1;
    int follow = 0, json = 0, from_set = 0, i;
    sluice_consumer *c = NULL;
    sluice_topic_partition *asg = NULL;
    size_t nasg = 0, k, ndone = 0;
    endmark *ends = NULL;
    char errstr[512];
    sluice_err err;
    int rc = EX_OK;
    int64_t got = 0;

    for (i = 0; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--from-beginning")) {
            start = SLUICE_OFFSET_BEGINNING;
            from_set++;
        } else if (!strcmp(argv[i], "--offset")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &start) || start < 0)
                return cli_die_usage("--offset needs a number >= 0");
            from_set++;
        } else if (!strcmp(argv[i], "--time")) {
            v = cli_optval(argc, argv, &i);
            if (!v || cli_parse_time(v, &ts))
                return cli_die_usage("--time needs ms since the epoch or "
                                     "YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                                     v ? v : "");
            from_set++;
        } else if (!strcmp(argv[i], "--partition")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &partition) || partition < 0 ||
                partition > INT32_MAX)
                return cli_die_usage("--partition needs a number >= 0");
        } else if (!strcmp(argv[i], "--count")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &count) || count < 1)
                return cli_die_usage("--count needs a number >= 1");
        } else if (!strcmp(argv[i], "--follow")) {
            follow = 1;
        } else if (!strcmp(argv[i], "--format")) {
            v = cli_optval(argc, argv, &i);
            if (!v || (strcmp(v, "raw") && strcmp(v, "json")))
                return cli_die_usage("--format needs raw or json");
            json = !strcmp(v, "json");
        } else if (!strcmp(argv[i], "--group")) {
            group = cli_optval(argc, argv, &i);
            if (!group || !*group)
                return cli_die_usage("--group needs a name");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_die_usage("consume: unknown option '%s'", argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return cli_die_usage("consume: unexpected argument '%s'", argv[i]);
        }
    }
    if (!topic)
        return cli_die_usage("consume: missing topic");
    if (from_set > 1)
        return cli_die_usage("consume: use only one of --from-beginning, "
                             "--offset, --time");
    if (group && partition >= 0)
        return cli_die_usage("consume: --group and --partition exclude each "
                             "other");
    if (group) {
        if (sluice_conf_set(g_conf, "group.id", group, errstr,
                            sizeof(errstr)) ||
            sluice_conf_set(g_conf, "auto.offset.reset",
                            start == SLUICE_OFFSET_BEGINNING ? "earliest"
                                                             : "latest",
                            errstr, sizeof(errstr)))
            return cli_die_usage("%s", errstr);
    }
    err = sluice_consumer_new(g_conf, &c, errstr, sizeof(errstr));
    if (err)
        return cli_fail_new(err, errstr);
    if (group) {
        const char *topics[1] = {topic};
        err = sluice_consumer_subscribe(c, topics, 1);
        if (err) {
            rc = cli_fail(err, "consume: join group");
            goto out;
        }
        if (start >= 0 || ts >= 0) {
            /* explicit start overrides the committed offsets */
            err = sluice_consumer_assignment(c, &asg, &nasg);
            for (k = 0; err == SLUICE_OK && k < nasg; k++)
                err = ts >= 0 ? sluice_consumer_seek_time(c, asg[k].topic,
                                                          asg[k].partition, ts)
                              : sluice_consumer_seek(c, asg[k].topic,
                                                     asg[k].partition, start);
            sluice_topic_partitions_free(asg, nasg);
            asg = NULL;
            if (err) {
                rc = cli_fail(err, "consume: seek");
                goto out;
            }
        }
    } else if (partition >= 0) {
        sluice_topic_partition tp = {topic, (int32_t)partition,
                                     ts >= 0 ? SLUICE_OFFSET_END : start};
        err = sluice_consumer_assign(c, &tp, 1);
        if (!err && ts >= 0)
            err = sluice_consumer_seek_time(c, topic, (int32_t)partition, ts);
    } else {
        err = sluice_consumer_assign_topic(c, topic,
                                           ts >= 0 ? SLUICE_OFFSET_END : start);
        if (!err && ts >= 0)
            err = sluice_consumer_seek_time(c, topic, -1, ts);
    }
    if (err) {
        rc = cli_fail(err, "consume");
        goto out;
    }
    /* Without --follow: stop at the log end as of now. */
    err = sluice_consumer_assignment(c, &asg, &nasg);
    if (err) {
        rc = cli_fail(err, "consume");
        goto out;
    }
    ends = calloc(nasg + 1, sizeof(*ends));
    if (!ends) {
        rc = EX_FAIL;
        goto out;
    }
    for (k = 0; k < nasg; k++) {
        int64_t lo, hi;
        err = sluice_consumer_watermarks(c, asg[k].topic, asg[k].partition, &lo,
                                         &hi);
        if (err) {
            rc = cli_fail(err, "consume: log end");
            goto out;
        }
        ends[k].topic = (char *)asg[k].topic;
        ends[k].partition = asg[k].partition;
        ends[k].end = hi;
        ends[k].done = asg[k].offset >= hi;
        if (ends[k].done)
            ndone++;
    }
    while (!g_stop && (count < 0 || got < count)) {
        sluice_message *m = NULL;
        if (!follow && ndone == nasg)
            break;
        err = sluice_consumer_poll(c, 500, &m);
        if (err == SLUICE_ERR_TIMEOUT)
            continue;
        if (err) {
            rc = cli_fail(err, "consume");
            break;
        }
        cli_print_msg(m, json, 0);
        if (follow)
            fflush(stdout); /* a live tail: show each record at once */
        got++;
        for (k = 0; k < nasg; k++) {
            if (!ends[k].done && ends[k].partition == m->partition &&
                !strcmp(ends[k].topic, m->topic) &&
                m->offset + 1 >= ends[k].end) {
                ends[k].done = 1;
                ndone++;
            }
        }
        sluice_message_free(m);
    }
    fflush(stdout);
    if (group && rc == EX_OK) {
        err = sluice_consumer_commit(c);
        if (err)
            rc = cli_fail(err, "consume: commit");
    }
out:
    free(ends);
    sluice_topic_partitions_free(asg, nasg);
    sluice_consumer_free(c);
    return rc;
}

/* ---- queue ------------------------------------------------------------ */

int cmd_queue(int argc, char **argv)
{
    const char *topic = NULL, *group = NULL;
    int64_t count = -1, wait_ms = -1, got = 0;
    int json = 0, i, rc = EX_OK;
    sluice_queue_consumer *q = NULL;
    char errstr[512];
    sluice_err err;

    if (argc < 1 || strcmp(argv[0], "consume"))
        return cli_die_usage("queue: expected 'queue consume TOPIC --group G'");
    for (i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--group")) {
            group = cli_optval(argc, argv, &i);
            if (!group || !*group)
                return cli_die_usage("--group needs a name");
        } else if (!strcmp(argv[i], "--count")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &count) || count < 1)
                return cli_die_usage("--count needs a number >= 1");
        } else if (!strcmp(argv[i], "--wait-ms")) {
            v = cli_optval(argc, argv, &i);
            if (!v || sl_parse_i64(v, &wait_ms) || wait_ms < 0 ||
                wait_ms > INT_MAX)
                return cli_die_usage("--wait-ms needs a number >= 0");
        } else if (!strcmp(argv[i], "--format")) {
            v = cli_optval(argc, argv, &i);
            if (!v || (strcmp(v, "raw") && strcmp(v, "json")))
                return cli_die_usage("--format needs raw or json");
            json = !strcmp(v, "json");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_die_usage("queue consume: unknown option '%s'", argv[i]);
        } else if (!topic) {
            topic = argv[i];
        } else {
            return cli_die_usage("queue consume: unexpected argument '%s'",
                                 argv[i]);
        }
    }
    if (!topic)
        return cli_die_usage("queue consume: missing topic");
    if (!group)
        return cli_die_usage("queue consume: --group is required");
    if (count > 0 && count < 256) {
        /* do not acquire (and count a delivery for) more than we print */
        char v[32];
        snprintf(v, sizeof(v), "%lld", (long long)count);
        sluice_conf_set(g_conf, "queue.credits", v, NULL, 0);
    }
    if (count > 0) /* no acquire beyond the last record we print */
        sluice_conf_set(g_conf, "queue.prefetch", "false", NULL, 0);
    err = sluice_queue_consumer_new(g_conf, topic, group, &q, errstr,
                                    sizeof(errstr));
    if (err)
        return cli_fail_new(err, errstr);
    while (!g_stop && (count < 0 || got < count)) {
        sluice_message *m = NULL;
        err =
            sluice_queue_consumer_poll(q, wait_ms < 0 ? 500 : (int)wait_ms, &m);
        if (err == SLUICE_ERR_TIMEOUT) {
            if (wait_ms >= 0)
                break; /* --wait-ms: stop when idle that long */
            continue;
        }
        if (err) {
            rc = cli_fail(err, "queue consume");
            break;
        }
        cli_print_msg(m, json, 1);
        if (count < 0)
            fflush(stdout); /* runs until stopped: show records at once */
        err = sluice_queue_consumer_ack(q, m->partition, m->offset);
        sluice_message_free(m);
        if (err) {
            rc = cli_fail(err, "queue ack");
            break;
        }
        got++;
    }
    fflush(stdout);
    err = sluice_queue_consumer_flush(q, -1);
    if (err && rc == EX_OK)
        rc = cli_fail(err, "queue ack");
    sluice_queue_consumer_free(q);
    return rc;
}
