/*
 * queue_int.h - what the files of the queue-group implementation share
 * (queue.c: model, window and events; queue_deliver.c: delivery and
 * settling; queue_store.c: persistence; queue_mgmt.c: describe and the
 * management verbs). Internal to groups/: nothing outside includes it.
 * The model is described at the top of queue.c.
 */
#ifndef SL_GROUPS_QUEUE_INT_H
#define SL_GROUPS_QUEUE_INT_H

#include "groups/internal.h"

static inline sl_qent *ent(sl_qpart *qp, int64_t off)
{
    return &qp->ents[(uint64_t)off & qp->mask];
}

/* The entry stops being a delayed never-delivered record. */
static inline void undelay(sl_qpart *qp, sl_qent *e)
{
    if (e->flags & SL_QE_DELAYED) {
        e->flags &= (uint8_t)~SL_QE_DELAYED;
        qp->n_delayed--;
    }
}

void sl_q__advance_start(sl_qpart *qp);
int64_t sl_q__backoff_delay(const sl_qgroup_cfg *cfg, uint16_t failures);
sl_qconsumer *sl_q__consumer_by_id(sl_qgroup *qg, uint32_t id);
void sl_q__dead_letter(sl_qpart *qp, int64_t off, const sl_record *rec_in,
                       int reason, const char *text);
const char *sl_q__dlq_topic(sl_qgroup *qg, char *buf, size_t len);
void sl_q__ent_keyed(sl_qpart *qp, sl_qent *e, int keyed);
void sl_q__ent_meta(sl_qgroup *qg, sl_qent *e, const sl_record *rec, int fresh);
void sl_q__expire(sl_qpart *qp, int64_t off, const sl_record *rec);
void sl_q__make_available(sl_qpart *qp, sl_qent *e, int64_t due);
void sl_q__pump(sl_qgroup *qg);
sl_qgroup *sl_q__qg_new(sl_groups *g, const char *group, const char *topic,
                        const sl_qgroup_cfg *cfg);
void sl_q__qg_sync_parts(sl_qgroup *qg);
int sl_q__qg_wants(sl_qgroup *qg);
void sl_q__qp_dirty(sl_qpart *qp);
void sl_q__qp_free(sl_qpart *qp);
sl_qpart *sl_q__qp_new(sl_qgroup *qg, int32_t partition, int64_t start);
sl_part *sl_q__qp_part(sl_qpart *qp);
sl_err sl_q__qp_resize(sl_qpart *qp, int32_t span);
int sl_q__qp_room(sl_qpart *qp);
int64_t sl_q__qp_upto(sl_qpart *qp);
void sl_q__recount_keyed(sl_qpart *qp);
int sl_q__reread(sl_qpart *qp, int64_t off, sl_record *rec);
int sl_q__latest_settle(sl_qpart *qp);
void sl_q__update_low_water(sl_qgroup *qg, sl_qpart *qp);
int sl_q__window_full(const sl_qpart *qp);

#endif
