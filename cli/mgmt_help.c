/*
 * mgmt_help.c - the help table of the `sluice` management commands
 * (mgmt.h): the one source of every command's --help text (usage, what it
 * does, an example), printed by sl_cli_help; never contacts a broker.
 */
#include <stdio.h>
#include <string.h>

#include "cli/mgmt.h"

/* ---- help ------------------------------------------------------------- */

typedef struct help {
    const char *cmd, *sub; /* sub NULL = the command without subcommand */
    const char *usage;
    const char *about;
    const char *example;
} help;

static const help helps[] = {
    {"topic", "create",
     "sluice topic create NAME [--partitions N] [--config k=v]...",
     "Create a topic. --partitions defaults to the broker's\n"
     "default-partitions; --config sets per-topic settings (retention-ms,\n"
     "segment-bytes, flush, cleanup-policy, ...; docs/configuration.md).",
     "sluice topic create orders --partitions 4 --config "
     "retention-ms=86400000"},
    {"topic", "list", "sluice topic list", "List topics: NAME<TAB>PARTITIONS.",
     "sluice topic list"},
    {"topic", "describe", "sluice topic describe NAME",
     "Show a topic's configs and each partition's start and end offsets.",
     "sluice topic describe orders"},
    {"topic", "delete", "sluice topic delete NAME",
     "Delete a topic and its data.", "sluice topic delete orders"},
    {"topic", "alter", "sluice topic alter NAME --config k=v [--config k=v]...",
     "Change per-topic settings after creation (an empty value, k=,\n"
     "removes the override). Applied to the open partitions at once.",
     "sluice topic alter orders --config retention-ms=3600000"},
    {"topic", "add-partitions", "sluice topic add-partitions NAME --count N",
     "Grow the topic to N partitions in total (more than it has). Records\n"
     "stay where they are; keys map to partitions differently from now on,\n"
     "as in Kafka.",
     "sluice topic add-partitions orders --count 8"},
    {"produce", NULL,
     "sluice produce TOPIC [--key-separator SEP] [--acks "
     "none|written|durable]\n"
     "                     [--partition N] [--header k=v]...",
     "Send one record per line of stdin.",
     "seq 1 100 | sluice produce orders --acks durable"},
    {"consume", NULL,
     "sluice consume TOPIC [--from-beginning | --offset N | --time T]\n"
     "                     [--partition N] [--count N] [--follow]\n"
     "                     [--format raw|json] [--group G]",
     "Read records (stops at the log end unless --follow). T: ms since the\n"
     "epoch or YYYY-MM-DDTHH:MM:SS[Z] (UTC). --group commits offsets of a\n"
     "stream group.",
     "sluice consume orders --from-beginning --count 10 --format json"},
    {"queue", "consume",
     "sluice queue consume TOPIC --group G [--count N] [--format raw|json]\n"
     "                           [--wait-ms MS]",
     "Competing consumption from queue group G: print each record, ack it.",
     "sluice queue consume orders --group workers --count 100"},
    {"queue", "purge", "sluice queue purge TOPIC --group G",
     "Drop every record queue group G has not consumed yet on TOPIC (the\n"
     "group moves to the log end; records in flight are dropped too: their\n"
     "acks then fail). The topic keeps its records for other groups.",
     "sluice queue purge orders --group workers"},
    {"queue", "peek",
     "sluice queue peek TOPIC --group G [--count N] [--format json|raw]",
     "Browse the next N (default 10) ready records of queue group G without\n"
     "changing anything: no delivery is counted, nothing is locked.",
     "sluice queue peek orders --group workers --count 5"},
    {"queues", NULL, "sluice queues [--format table|json]",
     "Every queue group x topic: ready, in flight, delayed, DLQ depth\n"
     "(pending/total), consumers and the age of the oldest ready record\n"
     "(like rabbitmqctl list_queues).",
     "sluice queues"},
    {"connections", NULL, "sluice connections [--format table|json]",
     "Open client connections: id, protocol, peer, user, age, bytes in and\n"
     "out, records in flight (delivered, not settled) and the\n"
     "subscriptions (STOMP) or queue groups (binary) of each.",
     "sluice connections"},
    {"connections", "close", "sluice connections close ID [--reason TEXT]",
     "Close connection ID (from `sluice connections`) now: its pending\n"
     "replies are dropped and what its consumers held is available again.\n"
     "The reason goes to the broker's log.",
     "sluice connections close 17 --reason 'stuck consumer'"},
    {"status", NULL, "sluice status [--format table|json]",
     "Broker version, uptime, data directory, listeners and node.",
     "sluice status"},
    {"version", NULL, "sluice version",
     "Client and broker versions (the broker's only if reachable).",
     "sluice version"},
    {"group", "list", "sluice group list",
     "Every group: NAME<TAB>stream|queue<TAB>STATE<TAB>members=N.",
     "sluice group list"},
    {"group", "describe", "sluice group describe G",
     "Kind, state, members and per-partition offsets, lag, in flight.",
     "sluice group describe workers"},
    {"group", "config",
     "sluice group config G --topic TOPIC [--alter] [--stats] [key=value]...",
     "Read or change the settings of queue group G on TOPIC\n"
     "(max_deliveries, lock_ms, backoff_initial_ms, ttl_ms, dlq_topic, ...).",
     "sluice group config workers --topic orders max_deliveries=5"},
    {"group", "delete", "sluice group delete G",
     "Delete group G: a queue group's state on every topic, a stream\n"
     "group's committed offsets (refused while it has members).",
     "sluice group delete old-workers"},
    {"group", "reset",
     "sluice group reset G --topic T --to-earliest|--to-latest|--to-offset N|\n"
     "                               --to-time T",
     "Move group G on topic T: queue groups restart delivery there (records\n"
     "in flight are dropped); stream groups get their committed offsets set\n"
     "(refused while the group has members, as in Kafka). T: ms since the\n"
     "epoch or YYYY-MM-DDTHH:MM:SS[Z].",
     "sluice group reset workers --topic orders --to-time "
     "2026-01-01T00:00:00Z"},
    {"dlq", "list", "sluice dlq list [TOPIC]",
     "Dead-letter topics: "
     "DLQ<TAB>source=T<TAB>group=G<TAB>pending=N<TAB>total=M.\n"
     "pending counts records not yet redriven or purged (the depth to alert\n"
     "on); total what the DLQ topic holds.",
     "sluice dlq list orders"},
    {"dlq", "show", "sluice dlq show DLQTOPIC [--count N] [--format raw|json]",
     "Print the records of a dead-letter topic from the beginning, with the\n"
     "dlq.* headers naming origin and reason.",
     "sluice dlq show orders.DLQ --count 10"},
    {"dlq", "redrive",
     "sluice dlq redrive DLQTOPIC [--to TOPIC] [--rate N] [--reason R] [--max "
     "N]",
     "Move pending dead letters back to their topic (or --to TOPIC) and mark\n"
     "them handled.",
     "sluice dlq redrive orders.DLQ --reason rejected --rate 100"},
    {"partition", "reassign",
     "sluice partition reassign TOPIC/P --replicas A,B,C\n"
     "       sluice partition reassign --status [TOPIC]\n"
     "       sluice partition reassign --cancel [TOPIC/P]",
     "Move partition P of TOPIC to the nodes A,B,C (cluster; node ids as in\n"
     "`sluice cluster status`). The new replicas are added first and copy\n"
     "the log from the leader (at most reassign-throttle-bytes per second\n"
     "per node); once all of them are in sync the old ones are dropped and\n"
     "A leads. A different number of nodes changes the partition's\n"
     "replication factor. --status lists the reassignments in progress:\n"
     "TOPIC/P replicas=.. target=.. adding=.. (copying) removing=..\n"
     "--cancel takes the reassignment of TOPIC/P (or every one in\n"
     "progress) back to the replicas it started from; the nodes it was\n"
     "adding stop copying and delete what they copied.",
     "sluice partition reassign orders/0 --replicas 2,3,4"},
    {"cluster", "rebalance", "sluice cluster rebalance",
     "Spread replicas and leaders evenly over the nodes (cluster): every\n"
     "partition whose replicas or leader differ from the even placement is\n"
     "reassigned (as `partition reassign`, throttled). Refused while a node\n"
     "is down. Follow it with `sluice partition reassign --status`.",
     "sluice cluster rebalance"},
    {"cluster", "add-node", "sluice cluster add-node ID HOST:PORT",
     "Add node ID to the cluster (HOST:PORT: its --cluster-listen). Start\n"
     "it first with --cluster-join and --cluster-peers listing the current\n"
     "nodes and itself; it joins the metadata quorum as a voter once it has\n"
     "caught up. It holds no partition until you move some to it\n"
     "(partition reassign, cluster rebalance).",
     "sluice cluster add-node 4 10.0.0.4:7420"},
    {"cluster", "remove-node", "sluice cluster remove-node ID [--no-wait]",
     "Remove node ID: its partitions are moved to the other nodes first\n"
     "(throttled, as partition reassign; refused if a partition would be\n"
     "left under its replication factor), then it leaves the metadata\n"
     "quorum. Waits until done unless --no-wait (run it again to finish).",
     "sluice cluster remove-node 1"},
    {"dlq", "purge", "sluice dlq purge DLQTOPIC",
     "Mark every pending record of a dead-letter topic handled (pending\n"
     "drops to 0; the records stay until retention removes them).",
     "sluice dlq purge orders.DLQ"},
};

#define NHELPS (sizeof(helps) / sizeof(helps[0]))

static void print_help(const help *h)
{
    printf("usage: %s\n\n%s\n\nexample:\n  %s\n\n"
           "global options: -b HOST:PORT (broker), -X key=value (libsluice)\n",
           h->usage, h->about, h->example);
}

int sl_cli_help(int argc, char **argv)
{
    int asked = 0;
    size_t i;
    for (int k = 0; k < argc; k++)
        if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h"))
            asked = 1;
    if (!asked || argc < 1)
        return 0;
    if (argc >= 2)
        for (i = 0; i < NHELPS; i++)
            if (helps[i].sub && !strcmp(helps[i].cmd, argv[0]) &&
                !strcmp(helps[i].sub, argv[1])) {
                print_help(&helps[i]);
                return 1;
            }
    for (i = 0; i < NHELPS; i++)
        if (!helps[i].sub && !strcmp(helps[i].cmd, argv[0])) {
            print_help(&helps[i]);
            return 1;
        }
    /* a command with subcommands: list them */
    {
        int any = 0;
        for (i = 0; i < NHELPS; i++)
            if (!strcmp(helps[i].cmd, argv[0])) {
                if (!any)
                    printf("sluice %s: subcommands\n\n", argv[0]);
                any = 1;
                printf("  %s\n", helps[i].usage);
            }
        if (any) {
            printf("\nsluice %s SUBCOMMAND --help for details\n", argv[0]);
            return 1;
        }
    }
    return 0;
}
