/*
 * config_table.h - THE table of sluiced settings (an X-macro list).
 *
 * One entry drives everything: the field in struct sl_config
 * (broker/config.h), the command-line flag (--KEY VALUE or --KEY=VALUE),
 * the config-file line (KEY VALUE), `sluiced --help`, and
 * docs/configuration.md (scripts/gen-config-doc.sh runs
 * `sluiced --dump-config-md`). Keys use dashes; the field is the key with
 * underscores. This file has no include guard on purpose.
 *
 * ADDING A SETTING is a one-line change: add
 *
 *   SL_CFG(field, "key", TYPE, "default", min, max, FLAGS, apply, "doc")
 *   SL_CFG_ENUM(field, "key", "default", "a|b|c", FLAGS, apply, "doc")
 *
 * TYPE: STR (char *), ADDR (char *, "HOST:PORT"), BOOL (int; yes/no,
 * true/false, on/off, 1/0), INT (int64_t, plain), SIZE (int64_t bytes;
 * suffixes k, m, g, t = powers of 1024), MS (int64_t milliseconds; suffixes
 * ms, s, m, h, d). min/max bound INT/SIZE/MS values (inclusive). An ENUM
 * field is an int: the index of the value in the choices list.
 * FLAGS: 0, or SL_CF_TOPIC when a topic may override it (topic create
 * configs use the same key). apply: NULL, or int fn(struct sl_config *,
 * char *err, size_t errlen) run after all parsing (0 = ok).
 * The default is a string parsed like any user value.
 *
 * Modules keep their keys in their own files, included below when they
 * exist: broker/stomp_config.h (STOMP helper), broker/ops_groups_config.h
 * (groups helper). Put only SL_CFG / SL_CFG_ENUM lines in them (no include
 * guard) and read the values as sl_broker_config(b)->field.
 */

/* ---- server ------------------------------------------------------------ */
SL_CFG(data, "data", STR, "./sluice-data", 0, 0, 0, NULL,
       "Data directory: meta.db, groups.db and topics/<topic>/<partition>/. "
       "Locked while sluiced runs; a second broker on it refuses to start.")
SL_CFG(recover, "recover", BOOL, "no", 0, 0, 0, NULL,
       "Start although state is missing, accepting the loss: without it "
       "sluiced refuses to start when meta.db, groups.db or a partition "
       "directory that existed is gone (docs/operations.md, Missing "
       "state). With it: topics are re-registered from their directories "
       "(their settings lost), queue and stream groups start over, a "
       "missing partition starts empty. A bare --recover means yes. Use "
       "for one start, then drop it.")
SL_CFG(listen, "listen", ADDR, "127.0.0.1:7410", 0, 0, 0, NULL,
       "Binary protocol listen address HOST:PORT (port 0 = any free port; "
       "the ready line on stdout reports the real one).")
SL_CFG(stomp_listen, "stomp-listen", ADDR, "127.0.0.1:61613", 0, 0, 0, NULL,
       "STOMP listen address HOST:PORT (port 0 = any free port).")
SL_CFG(config, "config", STR, "", 0, 0, 0, NULL,
       "Read settings from this file (lines `key value`, # comments). "
       "Command-line flags override the file.")
SL_CFG_ENUM(log_level, "log-level", "info", "debug|info|warn|error|none", 0,
            sl_config_apply_log_level,
            "Lowest level logged to stderr (one line per event).")
SL_CFG(max_connections, "max-connections", INT, "10000", 1, 1000000, 0, NULL,
       "Maximum open binary-protocol connections; further ones are "
       "closed at once and logged.")
SL_CFG(max_frame_bytes, "max-frame-bytes", SIZE, "64m", 1024, 1073741824, 0,
       NULL,
       "Largest binary-protocol request frame. A larger declared length is "
       "answered with TOO_LARGE and the connection closed, before the body "
       "is buffered.")
SL_CFG(idle_timeout_ms, "idle-timeout-ms", MS, "600000", 0, 86400000000LL, 0,
       NULL,
       "Close a connection that sent nothing and has nothing pending for "
       "this long (0 = never).")
SL_CFG(output_high_water, "output-high-water", SIZE, "4m", 65536, 1073741824, 0,
       NULL,
       "Back-pressure: when a connection's unsent output exceeds this, the "
       "broker stops reading its requests until the output drains to half.")
SL_CFG(max_pending_requests, "max-pending-requests", INT, "1024", 1, 1000000, 0,
       NULL,
       "Pipelined requests per connection awaiting their response (e.g. "
       "durable produces, long polls) before the broker stops reading more.")
SL_CFG(fetch_max_bytes, "fetch-max-bytes", SIZE, "32m", 1024, 1073741824, 0,
       NULL,
       "Cap on the record bytes of one fetch response (a client may ask "
       "for less). Only the first batch of a response is sent whole even "
       "when it is larger.")
SL_CFG(maintenance_interval_ms, "maintenance-interval-ms", MS, "5000", 10,
       3600000, 0, NULL,
       "How often segments are rolled by age and retention/compaction run.")
SL_CFG(shutdown_timeout_ms, "shutdown-timeout-ms", MS, "10000", 0, 3600000, 0,
       NULL,
       "On SIGTERM/SIGINT, how long to let in-flight requests finish before "
       "closing connections anyway (the final flush always runs).")

/* ---- topics ------------------------------------------------------------ */
SL_CFG(default_partitions, "default-partitions", INT, "1", 1, 10000, 0, NULL,
       "Partitions of a topic created without a count (auto-created topics "
       "included). 1, as Kafka's num.partitions: order is kept per topic.")
SL_CFG(auto_create_topics, "auto-create-topics", BOOL, "yes", 0, 0, 0, NULL,
       "Create a topic on the first produce (or STOMP SEND/SUBSCRIBE) to it.")
SL_CFG(segment_bytes, "segment-bytes", SIZE, "1g", 4096, 1099511627776LL,
       SL_CF_TOPIC, NULL, "Roll to a new segment file at this size.")
SL_CFG(segment_preallocate_bytes, "segment-preallocate-bytes", SIZE, "4m", 0,
       1073741824, SL_CF_TOPIC, NULL,
       "The active segment file is extended (fallocate) this far ahead of "
       "its end, so that an fsync after an append need not also commit a "
       "new file size (a journal commit on ext4; about 30% of a small "
       "fsync). Cut off again when the segment rolls or the broker stops. "
       "0 = grow the file with each append.")
SL_CFG(segment_ms, "segment-ms", MS, "7d", 1000, 31536000000LL, SL_CF_TOPIC,
       NULL, "Roll to a new segment when the active one is this old.")
SL_CFG(retention_ms, "retention-ms", MS, "7d", -1, 3153600000000LL, SL_CF_TOPIC,
       NULL,
       "Delete whole segments older than this (-1 = keep forever). Queue "
       "groups hold segments they have not consumed yet.")
SL_CFG(retention_bytes, "retention-bytes", SIZE, "-1", -1, 1125899906842624LL,
       SL_CF_TOPIC, NULL,
       "Per partition: delete oldest segments beyond this size (-1 = no "
       "limit).")
SL_CFG_ENUM(flush, "flush", "always", "always|interval|never", SL_CF_TOPIC,
            NULL,
            "always: every append is fsynced by the next group commit (a "
            "durable produce is answered after it); interval: at most every "
            "flush-interval-ms; never: left to the OS (durable acks are "
            "answered when written).")
SL_CFG(flush_interval_ms, "flush-interval-ms", MS, "1000", 1, 3600000,
       SL_CF_TOPIC, NULL, "fsync period for flush = interval.")
SL_CFG(flush_spin_us, "flush-spin-us", INT, "250", 0, 100000, 0, NULL,
       "After an fsync round the flusher thread waits this many "
       "microseconds for the next durable write, yielding the CPU, before "
       "it sleeps: saves a thread wake-up per round when clients wait for "
       "each receipt or durable ack. 0 = sleep at once.")
SL_CFG(loop_spin_us, "loop-spin-us", INT, "300", 0, 100000, 0, NULL,
       "While a single client waits for a durable write (a receipt on "
       "every SEND, one durable produce at a time), the event loop polls "
       "for the fsync round for up to this many microseconds instead of "
       "sleeping, which saves a thread wake-up per answer. Only while "
       "the recent fsync rounds took less than this. 0 = always sleep.")
SL_CFG(index_interval_bytes, "index-interval-bytes", SIZE, "4096", 128,
       16777216, SL_CF_TOPIC, NULL,
       "Bytes of log between two sparse offset/time index entries.")
SL_CFG_ENUM(cleanup_policy, "cleanup-policy", "delete", "delete|compact",
            SL_CF_TOPIC, NULL,
            "delete: time/size retention; compact: keep the latest record "
            "per key (tombstones removed after delete-retention-ms).")
SL_CFG(delete_retention_ms, "delete-retention-ms", MS, "1d", 0, 3153600000000LL,
       SL_CF_TOPIC, NULL,
       "Compacted topics: how long tombstones (null values) are kept.")

/* ---- cluster (docs/cluster.md) -------------------------------------------- */
SL_CFG(node_id, "node-id", INT, "0", 0, 1000000, 0, NULL,
       "This node's id in a cluster (1..1000000). 0 = a single node: no "
       "consensus code runs and nothing below is used.")
SL_CFG(cluster_listen, "cluster-listen", STR, "", 0, 0, 0, NULL,
       "Cluster (Raft) listen address IPv4:PORT; must equal this node's "
       "entry in cluster-peers. Required with node-id.")
SL_CFG(cluster_peers, "cluster-peers", STR, "", 0, 0, 0, NULL,
       "Every voter of the metadata quorum as ID@HOST:PORT,... (this node "
       "included), the same on all nodes. Required with node-id.")
SL_CFG(cluster_replication_factor, "cluster-replication-factor", INT, "3", 1,
       16, 0, NULL,
       "Replication factor of a topic created without --replication-factor "
       "(capped to the number of live nodes).")
SL_CFG(cluster_session_timeout_ms, "cluster-session-timeout-ms", MS, "3000",
       200, 600000, 0, NULL,
       "The metadata leader fences a node it has not heard from for this "
       "long: partition leadership moves off it.")
SL_CFG(cluster_election_timeout_ms, "cluster-election-timeout-ms", MS, "1000",
       50, 600000, 0, NULL,
       "Raft election timeout (randomised between 1x and 2x by libraft).")
SL_CFG(cluster_heartbeat_ms, "cluster-heartbeat-ms", MS, "100", 10, 60000, 0,
       NULL, "Raft heartbeat interval; also the controller's tick.")
SL_CFG(unclean_leader_election, "unclean-leader-election", BOOL, "no", 0, 0,
       SL_CF_TOPIC, NULL,
       "Cluster: when every in-sync replica of a partition is down, elect "
       "an out-of-sync replica anyway (records only the others had are "
       "lost). Off: the partition stays offline until an in-sync replica "
       "returns.")
SL_CFG(cluster_snapshot_threshold, "cluster-snapshot-threshold", INT, "1024",
       8, 100000000, 0, NULL,
       "Metadata log entries between two snapshots of the metadata image.")

/* ---- module drop-ins (see the top of this file) -------------------------- */
#if defined(__has_include)
#if __has_include("broker/stomp_config.h")
#include "broker/stomp_config.h"
#endif
#if __has_include("broker/ops_groups_config.h")
#include "broker/ops_groups_config.h"
#endif
#if __has_include("broker/admin_config.h")
#include "broker/admin_config.h"
#endif
#endif
