/*
 * queue_cfg.h - the settings of a queue group: one table of keys with one
 * set of bounds, used by every interface that sets them (the binary
 * QUEUE_GROUP_CONFIG API and `sluice queue config`, the broker's queue-*
 * defaults in broker/config_table.h, STOMP's RabbitMQ-style SUBSCRIBE
 * arguments, and groups.db's stored text). A value outside the bounds is
 * refused wherever it comes from, with a message naming key, value and
 * range. struct sl_qgroup_cfg itself is in groups.h.
 * @thread any (pure functions)
 */
#ifndef SL_QUEUE_CFG_H
#define SL_QUEUE_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "groups/groups.h"

/* Bounds that other tables repeat (the queue- keys of broker/config_table.h).
 */
#define SL_QCFG_MAX_DELIVERIES_MAX 65535
#define SL_QCFG_LOCK_MS_MAX 604800000LL  /* 7 days */
#define SL_QCFG_MAX_INFLIGHT_MAX 4194304 /* 1 << 22 */
#define SL_QCFG_MAX_PRIORITY 255         /* RabbitMQ's x-max-priority bound */
/* With max_priority, how many available records of a partition delivery
 * looks at to pick the highest priority (docs/stomp.md, Priority). */
#define SL_Q_PRIO_LOOKAHEAD 1000

/* Keys are matched with '-' and '.' read as '_' ("max-deliveries",
 * "max.deliveries" and "max_deliveries" are one key). */

/* The bounds of an integer key: 0 and *min, *max written, or -1 for a key
 * that is not an integer setting. */
int sl_qgroup_cfg_bounds(const char *key, int64_t *min, int64_t *max);

/* Set an integer key to v (for callers that parsed it themselves, such
 * as STOMP headers). SL_OK, or SL_ERR_INVALID_CONFIG with errstr (may be
 * NULL) naming the key, the value and the allowed range. */
sl_err sl_qgroup_cfg_set_int(sl_qgroup_cfg *cfg, const char *key, int64_t v,
                             char *errstr, size_t errlen);

/* sl_qgroup_cfg_defaults, sl_qgroup_cfg_set (any key, from text) and
 * sl_qgroup_cfg_text are declared in groups.h. */

/* Read what sl_qgroup_cfg_text wrote (groups.db) over cfg; keys it does
 * not know or values out of bounds are logged and left as they were. */
void sl_qgroup_cfg_from_text(sl_qgroup_cfg *cfg, const char *text);

#endif
