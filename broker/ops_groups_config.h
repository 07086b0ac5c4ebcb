/* ops_groups_config.h - group settings (drop-in for broker/config_table.h;
 * no include guard on purpose). Read as sl_broker_config(b)->field. The
 * queue-* keys are the defaults of NEW queue groups (each group keeps its
 * own settings, see QUEUE_GROUP_CONFIG and docs/groups.md). */
SL_CFG(queue_max_deliveries, "queue-max-deliveries", INT, "10", 1, 65535, 0,
       NULL,
       "Default deliveries of a record before a queue group dead-letters it "
       "(reason max_deliveries).")
SL_CFG(queue_lock_ms, "queue-lock-ms", MS, "30s", 1, 604800000, 0, NULL,
       "Default acquisition lock of a queue group: a record not acked, "
       "nacked or touched within it is delivered again (a failure).")
SL_CFG(queue_max_inflight, "queue-max-inflight", INT, "10000", 1, 4194304, 0,
       NULL,
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
            "When queue consumers (binary queue groups, STOMP /queue and "
            "durable subscriptions) get a record of a flush=always topic. "
            "written: as soon as it is appended, while its fdatasync runs "
            "(as RabbitMQ and ActiveMQ dispatch while they store); the "
            "producer's receipt or durable ack still waits for the "
            "fdatasync, and acks of such records are committed to groups.db "
            "only after it. durable: only after its fdatasync, so a consumer "
            "never sees a record that a power loss could take back.")
