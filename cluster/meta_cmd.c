/*
 * meta_cmd.c - the metadata commands' encoding (meta.h): what a proposer
 * puts in the log and meta_apply.c reads back.
 */
#include "cluster/meta.h"
#include "cluster/meta_int.h"

#include <string.h>

/* ---- encoders ------------------------------------------------------------ */

void sl_meta_enc_head(sl_wb *wb, int type)
{
    sl_wb_u8(wb, SL_META_VERSION);
    sl_wb_u8(wb, (uint8_t)type);
}

void sl_meta_enc_register(sl_wb *wb, int32_t id, const char *raft_addr,
                          const char *addr, const char *stomp_addr)
{
    sl_meta_enc_head(wb, SL_MCMD_REGISTER_NODE);
    sl_wb_u32(wb, (uint32_t)id);
    sl_meta_wb_str(wb, raft_addr);
    sl_meta_wb_str(wb, addr);
    sl_meta_wb_str(wb, stomp_addr);
}

void sl_meta_enc_register_tls(sl_wb *wb, int32_t id, const char *raft_addr,
                              const char *addr, const char *stomp_addr,
                              const char *tls_addr)
{
    sl_meta_enc_register(wb, id, raft_addr, addr, stomp_addr);
    sl_meta_wb_str(wb, tls_addr);
}

void sl_meta_enc_fence(sl_wb *wb, int32_t id, int fenced)
{
    sl_meta_enc_head(wb, fenced ? SL_MCMD_FENCE_NODE : SL_MCMD_UNFENCE_NODE);
    sl_wb_u32(wb, (uint32_t)id);
    if (fenced == SL_MI_STOPPED)
        sl_wb_u8(wb, 1); /* controlled shutdown */
}

void sl_meta_enc_create_topic(sl_wb *wb, const char *name, int32_t nparts,
                              int32_t rf, const char *const *keys,
                              const char *const *vals, uint32_t ncfg,
                              const int32_t *replicas)
{
    sl_meta_enc_head(wb, SL_MCMD_CREATE_TOPIC);
    sl_meta_wb_str(wb, name);
    sl_wb_u32(wb, (uint32_t)nparts);
    sl_wb_u32(wb, (uint32_t)rf);
    sl_wb_u32(wb, ncfg);
    for (uint32_t i = 0; i < ncfg; i++) {
        sl_meta_wb_str(wb, keys[i]);
        sl_meta_wb_str(wb, vals[i]);
    }
    for (int64_t i = 0; i < (int64_t)nparts * rf; i++)
        sl_wb_u32(wb, (uint32_t)replicas[i]);
}

void sl_meta_enc_delete_topic(sl_wb *wb, const char *name)
{
    sl_meta_enc_head(wb, SL_MCMD_DELETE_TOPIC);
    sl_meta_wb_str(wb, name);
}

void sl_meta_enc_partition_change(sl_wb *wb, const char *topic, int32_t part,
                                  int32_t expect_part_epoch, int32_t leader,
                                  const int32_t *isr, int32_t nisr)
{
    sl_meta_enc_head(wb, SL_MCMD_PARTITION_CHANGE);
    sl_meta_wb_str(wb, topic);
    sl_wb_u32(wb, (uint32_t)part);
    sl_wb_u32(wb, (uint32_t)expect_part_epoch);
    sl_wb_u32(wb, (uint32_t)leader);
    sl_wb_u32(wb, (uint32_t)nisr);
    for (int32_t i = 0; i < nisr; i++)
        sl_wb_u32(wb, (uint32_t)isr[i]);
}

void sl_meta_enc_reassign(sl_wb *wb, const char *topic, int32_t part,
                          const int32_t *target, int32_t n)
{
    sl_meta_enc_head(wb, SL_MCMD_REASSIGN);
    sl_meta_wb_str(wb, topic);
    sl_wb_u32(wb, (uint32_t)part);
    sl_wb_u32(wb, (uint32_t)n);
    for (int32_t i = 0; i < n; i++)
        sl_wb_u32(wb, (uint32_t)target[i]);
}

void sl_meta_enc_reassign_done(sl_wb *wb, const char *topic, int32_t part,
                               int32_t expect_part_epoch)
{
    sl_meta_enc_head(wb, SL_MCMD_REASSIGN_DONE);
    sl_meta_wb_str(wb, topic);
    sl_wb_u32(wb, (uint32_t)part);
    sl_wb_u32(wb, (uint32_t)expect_part_epoch);
}

void sl_meta_enc_unregister(sl_wb *wb, int32_t id)
{
    sl_meta_enc_head(wb, SL_MCMD_UNREGISTER_NODE);
    sl_wb_u32(wb, (uint32_t)id);
}

void sl_meta_enc_alter_topic(sl_wb *wb, const char *name,
                             const char *const *keys, const char *const *vals,
                             uint32_t n)
{
    sl_meta_enc_head(wb, SL_MCMD_ALTER_TOPIC);
    sl_meta_wb_str(wb, name);
    sl_wb_u32(wb, n);
    for (uint32_t i = 0; i < n; i++) {
        sl_meta_wb_str(wb, keys[i]);
        sl_meta_wb_str(wb, vals[i]);
    }
}

void sl_meta_enc_add_partitions(sl_wb *wb, const char *name, int32_t nparts,
                                int32_t rf, const int32_t *replicas,
                                int32_t nnew)
{
    sl_meta_enc_head(wb, SL_MCMD_ADD_PARTITIONS);
    sl_meta_wb_str(wb, name);
    sl_wb_u32(wb, (uint32_t)nparts);
    sl_wb_u32(wb, (uint32_t)rf);
    for (int64_t i = 0; i < (int64_t)nnew * rf; i++)
        sl_wb_u32(wb, (uint32_t)replicas[i]);
}

void sl_meta_enc_member(sl_wb *wb, int type, int32_t id, const char *addr)
{
    sl_meta_enc_head(wb, type);
    sl_wb_u32(wb, (uint32_t)id);
    if (type == SL_MREQ_MEMBER_ADD)
        sl_meta_wb_str(wb, addr);
}

sl_err sl_meta_dec_member(const void *buf, size_t len, int *type, int32_t *id,
                          char *addr, size_t addrlen)
{
    int t = sl_meta_cmd_type(buf, len);
    sl_rd rd;
    uint16_t n = 0;
    const char *a = "";
    if (t != SL_MREQ_MEMBER_ADD && t != SL_MREQ_MEMBER_REMOVE)
        return SL_ERR_MALFORMED;
    sl_rd_init(&rd, buf, len);
    sl_rd_u8(&rd);
    sl_rd_u8(&rd);
    *id = (int32_t)sl_rd_u32(&rd);
    if (t == SL_MREQ_MEMBER_ADD)
        a = sl_rd_str16(&rd, &n);
    if (rd.err || !a || sl_rd_left(&rd) != 0 || n >= addrlen)
        return SL_ERR_MALFORMED;
    memcpy(addr, a, n);
    addr[n] = 0;
    *type = t;
    return SL_OK;
}

int sl_meta_cmd_type(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < 2 || p[0] != SL_META_VERSION)
        return 0;
    if ((p[1] >= SL_MCMD_REGISTER_NODE && p[1] <= SL_MCMD_PARTITION_CHANGE) ||
        (p[1] >= SL_MCMD_USER_UPSERT && p[1] <= SL_MCMD_ACL_CHANGE) ||
        (p[1] >= SL_MCMD_REASSIGN && p[1] <= SL_MCMD_ADD_PARTITIONS))
        return p[1];
    return 0;
}
