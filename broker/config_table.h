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
 * Every key is in this one file, in sections by the part of the broker
 * that reads it (server, topics, STOMP, groups); a module reads its values
 * as sl_broker_config(b)->field. Keep a new key in its section; start a
 * new section for a new module. Every object sees the same struct
 * sl_config: there are no drop-in files.
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
SL_CFG(stomp_ws_listen, "stomp-ws-listen", STR, "", 0, 0, 0, NULL,
       "STOMP over WebSocket listen address HOST:PORT (path /ws, as "
       "RabbitMQ's Web-STOMP; port 0 = any free port). Empty = off.")
SL_CFG(config, "config", STR, "", 0, 0, 0, NULL,
       "Read settings from this file (lines `key value`, # comments). "
       "Command-line flags override the file.")
SL_CFG_ENUM(log_format, "log-format", "text", "text|json", 0,
            sl_config_apply_log_format,
            "Log line format: text (`TIME LEVEL SUBSYSTEM message`) or json "
            "(one object per line: ts, level, subsys, msg), for log "
            "shippers.")
SL_CFG(log_file, "log-file", STR, "", 0, 0, 0, NULL,
       "Append log lines to this file instead of stderr (created 0644 if "
       "missing). SIGHUP reopens it by name, so logrotate can move it "
       "away and signal (docs/operations.md). Empty = stderr.")
SL_CFG_ENUM(log_level, "log-level", "info", "debug|info|warn|error|none", 0,
            sl_config_apply_log_level,
            "Lowest level logged to stderr (one line per event).")
SL_CFG(max_connections, "max-connections", INT, "10000", 1, 1000000, 0, NULL,
       "Maximum open connections, every protocol together (binary and "
       "STOMP share one count); further ones are closed at once and "
       "logged (rate-limited).")
SL_CFG(max_connections_per_address, "max-connections-per-address", INT, "0", 0,
       1000000, 0, NULL,
       "Maximum open connections from one client IP address, every "
       "protocol together (0 = no limit besides max-connections).")
SL_CFG(handshake_timeout_ms, "handshake-timeout-ms", MS, "10000", 0, 3600000, 0,
       NULL,
       "Close a connection that has not finished its protocol handshake "
       "(STOMP CONNECT and login) within this time (0 = never).")
SL_CFG(max_frame_bytes, "max-frame-bytes", SIZE, "64m", 1024, 1073741824, 0,
       NULL,
       "Largest binary-protocol request frame. A larger declared length is "
       "answered with TOO_LARGE and the connection closed, before the body "
       "is buffered.")
SL_CFG(idle_timeout_ms, "idle-timeout-ms", MS, "600000", 0, 86400000000LL, 0,
       NULL,
       "Close a binary-protocol connection that sent nothing and has "
       "nothing pending for this long (0 = never). STOMP connections use "
       "heart-beats instead.")
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

/* ---- TLS (broker/tls.c, docs/security.md) ------------------------------ */
SL_CFG(tls_listen, "tls-listen", STR, "", 0, 0, 0, NULL,
       "Binary protocol over TLS: listen address HOST:PORT (port 0 = any "
       "free port; the ready line reports it as tls=). Empty = none. "
       "Needs tls-cert and tls-key.")
SL_CFG(stomp_tls_listen, "stomp-tls-listen", STR, "", 0, 0, 0, NULL,
       "STOMP over TLS (ActiveMQ's stomp+ssl, usually port 61614): listen "
       "address HOST:PORT (ready line: stomp-tls=). Empty = none.")
SL_CFG(stomp_wss_listen, "stomp-wss-listen", STR, "", 0, 0, 0, NULL,
       "STOMP over WebSocket over TLS (wss://): listen address HOST:PORT "
       "(ready line: stomp-wss=), the same paths and subprotocols as "
       "stomp-ws-listen. Empty = none.")
SL_CFG(http_tls_listen, "http-tls-listen", STR, "", 0, 0, 0, NULL,
       "HTTPS: the HTTP listener's routes (/metrics, /api, the console) "
       "over TLS on HOST:PORT (ready line: http-tls=). Empty = none.")
SL_CFG(tls_cert, "tls-cert", STR, "", 0, 0, 0, NULL,
       "PEM file with the broker's certificate, followed by any "
       "intermediate certificates. Reloaded on SIGHUP (open connections "
       "keep theirs).")
SL_CFG(tls_key, "tls-key", STR, "", 0, 0, 0, NULL,
       "PEM file with the private key of tls-cert (unencrypted). A warning "
       "is logged when group or others may read it (chmod 600 it). "
       "Reloaded on SIGHUP.")
SL_CFG(tls_ca, "tls-ca", STR, "", 0, 0, 0, NULL,
       "PEM file of the CA certificates client certificates must chain to "
       "(needed by tls-client-auth request|require). Reloaded on SIGHUP.")
SL_CFG_ENUM(tls_client_auth, "tls-client-auth", "none", "none|request|require",
            0, NULL,
            "Client certificates (mutual TLS): none = not asked for; "
            "request = asked for and verified against tls-ca when given; "
            "require = a client without a valid certificate is refused. "
            "A verified certificate's subject is the connection's TLS "
            "identity (docs/security.md).")
SL_CFG_ENUM(tls_cert_login, "tls-cert-login", "none", "none|cn|san", 0, NULL,
            "Log in with a verified client certificate, without a password "
            "(RabbitMQ's ssl_cert_login_from, Kafka's SSL principal): cn = "
            "the subject's common name is the user name; san = its first "
            "DNS or email subjectAltName; none = certificates name nobody. "
            "The user must exist. Binary: implicit, or SASL EXTERNAL; "
            "STOMP: a CONNECT without login and passcode (docs/security.md).")

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
            "always: every append is fsynced by a group commit, at once "
            "when a client waits for it (a durable produce is answered "
            "after it), else within flush-lazy-ms; interval: at most every "
            "flush-interval-ms; never: left to the OS (durable acks are "
            "answered when written).")
SL_CFG(flush_interval_ms, "flush-interval-ms", MS, "1000", 1, 3600000,
       SL_CF_TOPIC, NULL, "fsync period for flush = interval.")
SL_CFG(flush_spin_us, "flush-spin-us", INT, "250", 0, 100000, 0, NULL,
       "After an fsync round the flusher thread waits up to this many "
       "microseconds for the next durable write before it sleeps: saves a "
       "thread wake-up per round when clients wait for each receipt or "
       "durable ack. Adaptive: it sleeps through most of the recent gap "
       "between rounds and requests and spins (yielding the CPU) only "
       "around its end, not at all when the gaps exceed 2 ms. 0 = sleep "
       "at once.")
SL_CFG(loop_spin_us, "loop-spin-us", INT, "300", 0, 100000, 0, NULL,
       "While a single client waits for a durable write (a receipt on "
       "every SEND, one durable produce at a time), the event loop polls "
       "for the fsync round for up to this many microseconds instead of "
       "sleeping, which saves a thread wake-up per answer. Only while "
       "the recent fsync rounds took less than this. 0 = always sleep.")
SL_CFG(flush_inline_us, "flush-inline-us", INT, "1000", 0, 100000, 0, NULL,
       "When one client waits for one durable write and nothing else is "
       "pending, the event loop fsyncs it itself instead of handing it to "
       "the flusher thread and being woken back (two thread wake-ups and "
       "the spins that hide them saved per message). Only while the "
       "recent fsync rounds took at most this many microseconds: the "
       "longest the loop's other work waits. 0 = always the flusher "
       "thread.")
SL_CFG(flush_lazy_ms, "flush-lazy-ms", MS, "10", 0, 60000, 0, NULL,
       "flush = always: an append no client waits on yet (a STOMP SEND "
       "without a receipt, a produce with acks below durable) starts no "
       "fsync round of its own; it is covered by the round that the next "
       "receipt or durable ack starts, or at the latest after this long. "
       "A producer that asks for a receipt every 100 SENDs pays one "
       "fsync per 100. Single node with queue-dispatch written only (a "
       "cluster or queue-dispatch durable syncs at once). 0 = every "
       "append starts a round.")
SL_CFG(journal, "journal", BOOL, "yes", 0, 0, 0, NULL,
       "Shared write-ahead journal (DATA/journal): an fsync round with at "
       "least journal-min-partitions partitions to sync writes their new "
       "bytes to one journal file and fsyncs only that, instead of one "
       "fsync per partition; segment files are fsynced behind it when a "
       "journal file is full, and the journal is replayed on start after "
       "a crash. no = always one fsync per partition.")
SL_CFG(journal_min_partitions, "journal-min-partitions", INT, "4", 1, 1000000,
       0, NULL,
       "A round goes through the journal when it syncs at least this many "
       "partitions (fewer: each partition's files are fsynced, which "
       "writes every byte once instead of twice).")
SL_CFG(journal_file_bytes, "journal-file-bytes", SIZE, "64m", 1048576,
       17179869184LL, 0, NULL,
       "Start a new journal file at this size; the segment files the old "
       "one covered are then fsynced in the background and it is deleted. "
       "A file that covers many partitions grows on to 32 KiB per "
       "partition, at most 8 times this size, so that its checkpoint "
       "costs at most one fsync per 32 KiB journaled. Bounds the "
       "journal's disk use and the replay after a crash.")
SL_CFG(storage_max_open_files, "storage-max-open-files", INT, "0", 0, 100000000,
       0, NULL,
       "Segment log files kept open at once, over all partitions (an LRU: "
       "the least recently used are closed and reopened on demand, so the "
       "partition count is not bounded by descriptors). 0 = half of "
       "RLIMIT_NOFILE (sluiced raises it to its hard limit at start). "
       "Values below 8 count as 8.")
SL_CFG(partition_idle_unload_ms, "partition-idle-unload-ms", MS, "300000", 0,
       86400000, 0, NULL,
       "A partition nothing appended to or read from for this long gives "
       "back its memory and descriptors (segments, indexes, producer "
       "state) once all of it is fsynced, and loads again at its next "
       "use. Checked every maintenance-interval-ms. 0 = never.")
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

/* ---- cluster (docs/cluster.md) ------------------------------------------- */
SL_CFG(node_id, "node-id", INT, "0", 0, 1000000, 0, NULL,
       "This node's id in a cluster (1..1000000). 0 = a single node: no "
       "consensus code runs and nothing below is used.")
SL_CFG(cluster_listen, "cluster-listen", STR, "", 0, 0, 0, NULL,
       "Cluster (Raft) listen address IPv4:PORT; must equal this node's "
       "entry in cluster-peers. Required with node-id.")
SL_CFG(cluster_peers, "cluster-peers", STR, "", 0, 0, 0, NULL,
       "Every voter of the metadata quorum as ID@HOST:PORT,... (this node "
       "included), the same on all nodes. Required with node-id.")
SL_CFG(cluster_join, "cluster-join", BOOL, "no", 0, 0, 0, NULL,
       "Start a new node that joins a running cluster: it does not "
       "bootstrap the metadata log (its cluster-peers lists the current "
       "nodes and itself) and waits until `sluice cluster add-node` on the "
       "cluster adds it (docs/cluster.md 10.4). Harmless on later starts.")
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
SL_CFG(min_insync_replicas, "min-insync-replicas", INT, "2", 1, 16, SL_CF_TOPIC,
       NULL,
       "Cluster: a durable produce (acks=durable, a STOMP receipt) is "
       "answered once every in-sync replica has fsynced it, and refused "
       "with NOT_ENOUGH_REPLICAS while the in-sync set has fewer members "
       "than this (capped to the topic's replication factor).")
SL_CFG(replica_lag_time_max_ms, "replica-lag-time-max-ms", MS, "10000", 100,
       3600000, 0, NULL,
       "Cluster: the partition leader removes a follower from the in-sync "
       "set when it has not caught up to the leader's log end for this "
       "long, and adds it back once it has.")
SL_CFG(replica_hwm_checkpoint_ms, "replica-hwm-checkpoint-ms", MS, "5000", 0,
       3600000, 0, NULL,
       "Cluster: how often a node writes the high-water marks of its "
       "partitions to DATA/replication-offset-checkpoint (only when one "
       "moved; also at a clean stop), so that after a restart it checks "
       "its log against a new leader from that mark instead of its active "
       "segment's base (docs/cluster.md 3.2). 0 = off (no file written or "
       "read).")
SL_CFG(cluster_snapshot_threshold, "cluster-snapshot-threshold", INT, "1024", 8,
       100000000, 0, NULL,
       "Metadata log entries between two snapshots of the metadata image.")
SL_CFG(reassign_throttle_bytes, "reassign-throttle-bytes", SIZE, "64m", 0,
       1099511627776LL, 0, NULL,
       "Cluster: bytes per second a node copies for the partitions a "
       "reassignment adds it to (partition reassign, cluster rebalance, "
       "remove-node), so moving data does not starve producers and "
       "in-sync followers. 0 = unlimited.")
SL_CFG(controlled_shutdown_timeout_ms, "controlled-shutdown-timeout-ms", MS,
       "10000", 0, 3600000, 0, NULL,
       "Cluster: on SIGTERM a node first drains the queue groups it "
       "coordinates (no new deliveries; what consumers hold is settled and "
       "committed: at most half of this), then moves partition leadership "
       "off itself through the metadata quorum (controlled shutdown), and "
       "stops anyway once this long has passed. 0 = stop at once "
       "(the controller fences it after cluster-session-timeout-ms).")

/* ---- STOMP (broker/stomp*.c) ----------------------------------------- */
SL_CFG(stomp_users_file, "stomp-users-file", STR, "", 0, 0, 0, NULL,
       "STOMP users: a file of `LOGIN pbkdf2-sha256$ITERATIONS$SALT_HEX$"
       "HASH_HEX` lines (docs/stomp.md shows how to make one), imported "
       "into the user store. Without any user (development mode) a CONNECT "
       "without login is anonymous and a login is accepted only for "
       "guest/guest from loopback (logged at start-up).")
SL_CFG(vhosts, "vhosts", STR, "", 0, 0, 0, sl_config_apply_vhosts,
       "STOMP virtual hosts besides the default one, /: a comma list of "
       "names (A-Z a-z 0-9 _ -). Empty = none: CONNECT's host header is "
       "ignored. Otherwise host must be absent, / or one of them (else "
       "ERROR Bad CONNECT), and destination N in vhost V is topic "
       "vhost.V.N (docs/stomp.md, Virtual hosts).")
SL_CFG(stomp_max_frame, "stomp-max-frame", SIZE, "16m", 1024, 67108864, 0, NULL,
       "Largest STOMP frame (command, headers and body). A larger frame is "
       "refused with an ERROR as soon as its size is known.")
SL_CFG(stomp_max_headers, "stomp-max-headers", INT, "1000", 1, 100000, 0, NULL,
       "Most header lines in one STOMP frame.")
SL_CFG(stomp_max_header_length, "stomp-max-header-length", SIZE, "10k", 64,
       1048576, 0, NULL,
       "Longest STOMP header line (and command line), in bytes.")
SL_CFG(stomp_prefetch, "stomp-prefetch", INT, "1000", 1, 1000000, 0, NULL,
       "Default in-flight limit per STOMP subscription (unacknowledged "
       "messages in client modes; messages in the socket buffer in auto "
       "mode). prefetch-count / activemq.prefetchSize override it.")
SL_CFG(stomp_heartbeat_min_ms, "stomp-heartbeat-min-ms", MS, "100", 1, 3600000,
       0, NULL,
       "Smallest heart-beat interval the broker agrees to, either way; a "
       "client asking for less gets this.")
SL_CFG(stomp_lock_ms, "stomp-lock-ms", MS, "1d", 1000, 31536000000LL, 0, NULL,
       "Lock on a message delivered to a STOMP consumer that has not acked "
       "it. Connection loss or UNSUBSCRIBE releases it at once; the lock "
       "only matters for a consumer that stays connected without acking.")
SL_CFG(stomp_key_ordered, "stomp-key-ordered", BOOL, "yes", 0, 0, 0, NULL,
       "Queue groups first created by STOMP use key-ordered delivery, so "
       "messages with the same JMSXGroupID (stored as the record key) go "
       "to one consumer at a time, in order (ActiveMQ message groups).")
SL_CFG(stomp_max_tx_bytes, "stomp-max-tx-bytes", SIZE, "16m", 1024, 1073741824,
       0, NULL,
       "Most bytes of SEND bodies and headers one STOMP transaction may "
       "buffer before COMMIT.")

/* ---- groups (broker/ops_groups.c, groups/) ------------------------------
 * The queue-* keys are the defaults of NEW queue groups (each group keeps
 * its own settings, see QUEUE_GROUP_CONFIG and docs/groups.md); their
 * bounds are the queue groups' own (groups/queue_cfg.h). */
SL_CFG(queue_max_deliveries, "queue-max-deliveries", INT, "10", 1,
       SL_QCFG_MAX_DELIVERIES_MAX, 0, NULL,
       "Default deliveries of a record before a queue group dead-letters it "
       "(reason max_deliveries).")
SL_CFG(queue_lock_ms, "queue-lock-ms", MS, "30s", 1, SL_QCFG_LOCK_MS_MAX, 0,
       NULL,
       "Default acquisition lock of a queue group: a record not acked, "
       "nacked or touched within it is delivered again (a failure).")
SL_CFG(queue_max_inflight, "queue-max-inflight", INT, "10000", 1,
       SL_QCFG_MAX_INFLIGHT_MAX, 0, NULL,
       "Default window of a queue group per partition: offsets between the "
       "group's start offset and the first unread one. Bounds its memory.")
SL_CFG(message_ttl_ms, "message-ttl-ms", MS, "-1", -1, 3153600000000LL,
       SL_CF_TOPIC, NULL,
       "Queue groups do not deliver a record older than this (from its "
       "timestamp); -1 = no limit. Per topic; record headers ttl-ms / "
       "expires and the group's ttl_ms may shorten it.")
SL_CFG(group_commit_interval_ms, "group-commit-interval-ms", MS, "50", 0, 60000,
       0, NULL,
       "Group state that nobody waits for (STOMP ACK/NACK without a "
       "receipt, delivery counts, membership) is committed to groups.db at "
       "most this often; an ACK answered to its client (binary ack "
       "response, STOMP receipt) and offset commits are committed before "
       "the answer, in the next flusher round. 0 = commit after every "
       "round.")
SL_CFG_ENUM(queue_dispatch, "queue-dispatch", "written", "written|durable", 0,
            NULL,
            "When every reader (binary FETCH, STOMP /topic subscribers, "
            "queue consumers: binary queue groups, STOMP /queue and durable "
            "subscriptions) sees a record of a flush=always topic. "
            "written: as soon as it is appended, while its fdatasync runs "
            "(as RabbitMQ and ActiveMQ dispatch while they store); the "
            "producer's receipt or durable ack still waits for the "
            "fdatasync, and acks and offset commits of such records are "
            "committed to groups.db only after it. durable: only after its "
            "fdatasync (also for flush=interval topics), so a consumer "
            "never sees a record that a power loss could take back. "
            "docs/broker.md, Fetch and visibility.")

/* ---- security (broker/auth.c, broker/acl.c; docs/security.md) ---------- */
SL_CFG(allow_anonymous, "allow-anonymous", BOOL, "no", 0, 0, 0, NULL,
       "Without users every client may do everything; sluiced then refuses "
       "to start with a listener beyond loopback unless this is given "
       "(RabbitMQ's guest user works only from localhost for the same "
       "reason). Ignored once a user exists.")
SL_CFG(bootstrap_admin, "bootstrap-admin", STR, "", 0, 0, 0, NULL,
       "Create this administrator at start if no user exists yet, with the "
       "password from the SLUICE_ADMIN_PASSWORD environment variable (never "
       "on the command line). Authentication is on once a user exists.")
SL_CFG(cluster_secret_file, "cluster-secret-file", STR, "", 0, 0, 0, NULL,
       "Cluster mode: a file holding the secret every node of the cluster "
       "shares (at least 16 bytes; chmod 600). Connections between brokers "
       "(followers' fetches, forwarded produces and metadata commands) "
       "authenticate with it, and replica fetches and CLUSTER_FORWARD from "
       "any other connection are refused. Required once users exist "
       "(docs/security.md, Clusters).")
SL_CFG(cluster_tls, "cluster-tls", BOOL, "no", 0, 0, 0, NULL,
       "Cluster mode: brokers reach each other over TLS. Each node "
       "registers its tls-listen and stomp-tls-listen addresses (both "
       "needed, and tls-ca), so METADATA and cluster status name TLS "
       "addresses and clients use TLS too; it connects to the other nodes "
       "with TLS, checks their certificate against tls-ca and the address "
       "it connects to, and shows its own tls-cert as a client certificate "
       "(docs/security.md, Clusters).")
SL_CFG(login_failure_delay_ms, "login-failure-delay-ms", MS, "100", 0, 60000, 0,
       NULL,
       "Slow-down of failed logins per client address: from the third "
       "failure on, the address's next login check waits this long, doubled "
       "per further failure up to 10 s (forgotten after 5 minutes without a "
       "failure). 0 turns it off.")

/* ---- management (broker/admin.c, broker/http.c) ------------------------ */
SL_CFG(http_listen, "http-listen", ADDR, "127.0.0.1:7480", 0, 0, 0, NULL,
       "HTTP listen address HOST:PORT for /metrics (Prometheus), /healthz, "
       "/readyz, the JSON management API (/api/...) and the web console "
       "(/). Port 0 = any free port (the ready line reports it). Loopback "
       "by default; once users exist /api/ needs HTTP Basic "
       "(docs/http-api.md, docs/security.md).")
