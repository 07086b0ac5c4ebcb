/*
 * sluice-failover-client: a producer that keeps sending while the cluster
 * under it fails over (issue 13, docs/cluster.md section 5). Used by
 * tests/cluster/test_cluster_clients.py (every acknowledged record present
 * afterwards, the producer never fails) and bench/client_failover.py (the
 * time from a leader's kill to the next acknowledgement the client sees).
 *
 *   sluice-failover-client -b BOOTSTRAP -t TOPIC [-n NAME] [-r RATE]
 *                          [-X key=value]...
 *
 * Sends records NAME-00000000, NAME-00000001, ... at about RATE records/s
 * (default 1000) with acks=durable (unless -X acks=...) until a line
 * "stop" or end of file on stdin; then flushes. On stdout, one line per
 * delivery report, in the order the application got them:
 *
 *   ack SEQ PARTITION OFFSET MONO_MS
 *   fail SEQ ERRNAME MONO_MS
 *
 * (MONO_MS: CLOCK_MONOTONIC in ms, the clock Python's time.monotonic()
 * reads), then "done sent=N acked=A failed=F". Exit status 0 when every
 * record was acknowledged, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t acked, failed;

static void on_delivery(const sluice_delivery *d, void *opaque)
{
    long long seq = (long long)(intptr_t)d->opaque;
    (void)opaque;
    if (d->err == SLUICE_OK) {
        acked++;
        printf("ack %lld %d %lld %lld\n", seq, (int)d->partition,
               (long long)d->offset, mono_ms());
    } else {
        failed++;
        printf("fail %lld %s %lld\n", seq, sluice_errname(d->err), mono_ms());
    }
}

/* 1 when stdin says stop (a "stop" line or end of file). */
static int stop_requested(void)
{
    struct pollfd pfd = {0, POLLIN, 0};
    char buf[256];
    ssize_t n;
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    n = read(0, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 1;
    buf[n] = 0;
    return strstr(buf, "stop") != NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: sluice-failover-client -b BOOTSTRAP -t TOPIC "
                    "[-n NAME] [-r RATE] [-X key=value]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *topic = NULL, *name = "p";
    long rate = 1000;
    char errstr[512], val[128];
    sluice_conf *conf = sluice_conf_new();
    sluice_producer *p = NULL;
    long long sent = 0, t0;
    int opt;
    sluice_err err;

    if (!conf)
        return 1;
    sluice_conf_set(conf, "acks", "durable", errstr, sizeof(errstr));
    sluice_conf_set(conf, "linger.ms", "2", errstr, sizeof(errstr));
    while ((opt = getopt(argc, argv, "b:t:n:r:X:")) != -1) {
        char *eq;
        switch (opt) {
        case 'b':
            if (sluice_conf_set(conf, "bootstrap", optarg, errstr,
                                sizeof(errstr))) {
                fprintf(stderr, "%s\n", errstr);
                return 2;
            }
            break;
        case 't':
            topic = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'r':
            rate = strtol(optarg, NULL, 10);
            if (rate <= 0)
                return usage();
            break;
        case 'X':
            eq = strchr(optarg, '=');
            if (!eq)
                return usage();
            *eq = 0;
            if (sluice_conf_set(conf, optarg, eq + 1, errstr, sizeof(errstr))) {
                fprintf(stderr, "%s\n", errstr);
                return 2;
            }
            break;
        default:
            return usage();
        }
    }
    if (!topic)
        return usage();
    sluice_conf_set_delivery_cb(conf, on_delivery, NULL);
    err = sluice_producer_new(conf, &p, errstr, sizeof(errstr));
    sluice_conf_free(conf);
    if (err) {
        fprintf(stderr, "producer: %s\n", errstr);
        return 1;
    }
    t0 = mono_ms();
    while (!stop_requested()) {
        /* keep to the rate: records due by now */
        long long due = (mono_ms() - t0) * rate / 1000 + 1;
        if (sent >= due && sluice_producer_outstanding(p) == 0)
            poll(NULL, 0, 1); /* nothing to send or wait for yet */
        while (sent < due) {
            int len = snprintf(val, sizeof(val), "%s-%08lld", name, sent);
            err = sluice_producer_send(p, topic, SLUICE_PARTITION_ANY, NULL, 0,
                                       val, (size_t)len, NULL, 0, 0,
                                       (void *)(intptr_t)sent);
            if (err) {
                /* send itself failing is what the test looks for */
                printf("send-error %lld %s %s\n", sent, sluice_errname(err),
                       sluice_errstr());
                fflush(stdout);
                sluice_producer_free(p);
                return 1;
            }
            sent++;
        }
        sluice_producer_poll(p, 1);
        fflush(stdout);
    }
    err = sluice_producer_flush(p, -1);
    if (err)
        printf("flush-error %s %s\n", sluice_errname(err), sluice_errstr());
    printf("done sent=%lld acked=%zu failed=%zu\n", sent, acked, failed);
    fflush(stdout);
    sluice_producer_free(p);
    return failed == 0 && !err && acked == (size_t)sent ? 0 : 1;
}
