/* stomp_config.h - STOMP settings (drop-in for broker/config_table.h; no
 * include guard on purpose). Read as sl_broker_config(b)->field. */
SL_CFG(stomp_users_file, "stomp-users-file", STR, "", 0, 0, 0, NULL,
       "STOMP users: a file of `LOGIN pbkdf2-sha256$ITERATIONS$SALT_HEX$"
       "HASH_HEX` lines (docs/stomp.md shows how to make one). Empty = "
       "development mode: any login is accepted (logged at start-up).")
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
