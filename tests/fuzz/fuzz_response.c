/*
 * fuzz_response.c - libsluice facing a malicious broker. The first input
 * byte says which request the client is waiting on; the rest is a stream
 * of response frames cut as client/src/conn.c cuts them. Each body goes to
 * that api's response decoder; record fields (FETCH, QUEUE_ACQUIRE) are
 * walked with the client's own cursor (CRC check, zstd, borrowed chunks)
 * and turned into messages with sl_msg_new, as the consumer does.
 */
#include "tests/fuzz/fuzz_common.h"

#include "client/src/cursor.h"
#include "client/src/internal.h"

#define FZ_MAX_FRAME (1u << 20)

static const uint16_t apis[] = {
    SL_API_HANDSHAKE,
    SL_API_METADATA,
    SL_API_CREATE_TOPICS,
    SL_API_DELETE_TOPICS,
    SL_API_LIST_TOPICS,
    SL_API_PRODUCE,
    SL_API_FETCH,
    SL_API_LIST_OFFSETS,
    SL_API_GROUP_JOIN,
    SL_API_GROUP_HEARTBEAT,
    SL_API_OFFSET_COMMIT,
    SL_API_OFFSET_FETCH,
    SL_API_GROUP_LIST,
    SL_API_GROUP_DESCRIBE,
    SL_API_QUEUE_ACQUIRE,
    SL_API_QUEUE_ACK,
    SL_API_DLQ_LIST,
    SL_API_DLQ_REDRIVE,
    SL_API_QUEUE_GROUP_CONFIG,
    /* appended: a seed's first byte is its index here */
    SL_API_ADMIN,
    SL_API_CLUSTER_STATUS,
    SL_API_INIT_PRODUCER_ID,
    SL_API_SASL_HANDSHAKE,
    SL_API_SASL_AUTHENTICATE,
};
#define NAPIS (sizeof(apis) / sizeof(apis[0]))

static void walk_records(sl_chunk *ch, sl_str topic, uint32_t part,
                         const uint8_t *rec, size_t len)
{
    sl_cursor cu;
    sl_record r;
    sl_chunk *owner;
    sl_err e;
    int n = 0;
    (void)sl_records_end(rec, len);
    sl_cursor_init(&cu, ch, rec, len);
    while (n++ < 100000 && sl_cursor_next(&cu, &r, &owner, &e) == 1) {
        sluice_message *m;
        fz_touch(r.key, r.key_len > 0 ? (size_t)r.key_len : 0);
        fz_touch(r.value, r.value_len > 0 ? (size_t)r.value_len : 0);
        m = sl_msg_new(topic.p ? topic.p : "", topic.len, (int32_t)part, &r,
                       owner);
        sluice_message_free(m);
    }
    sl_cursor_fini(&cu);
}

static void decode_body(uint16_t api, sl_chunk *ch, const uint8_t *body,
                        size_t len, sl_arena *a)
{
    uint32_t i, k;
    int32_t err;
    sl_str msg;
    if (sl_resp_error_decode(body, len, &err, &msg) == SL_OK)
        fz_str(msg);
    switch (api) {
    case SL_API_HANDSHAKE: {
        sl_handshake_resp r;
        uint16_t v;
        if (sl_handshake_resp_decode(body, len, a, &r) == SL_OK) {
            fz_str(r.server_name);
            fz_str(r.server_version);
            (void)sl_api_version_pick(&r, SL_API_FETCH, &v);
        }
        break;
    }
    case SL_API_METADATA: {
        sl_metadata_resp r;
        if (sl_metadata_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].name);
                fz_touch(r.topics[i].parts,
                         r.topics[i].nparts * sizeof(sl_meta_part));
                for (k = 0; k < r.topics[i].nconfigs; k++) {
                    fz_str(r.topics[i].configs[k].key);
                    fz_str(r.topics[i].configs[k].value);
                }
            }
        break;
    }
    case SL_API_CREATE_TOPICS:
    case SL_API_DELETE_TOPICS: {
        sl_topics_result_resp r;
        sl_err rc = api == SL_API_CREATE_TOPICS
                        ? sl_create_topics_resp_decode(body, len, a, &r)
                        : sl_delete_topics_resp_decode(body, len, a, &r);
        if (rc == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].name);
                fz_str(r.topics[i].message);
            }
        break;
    }
    case SL_API_LIST_TOPICS: {
        sl_list_topics_resp r;
        if (sl_list_topics_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++)
                fz_str(r.topics[i].name);
        break;
    }
    case SL_API_PRODUCE: {
        sl_produce_resp r;
        if (sl_produce_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].topic);
                fz_touch(r.topics[i].parts,
                         r.topics[i].nparts * sizeof(sl_produce_part_resp));
            }
        break;
    }
    case SL_API_FETCH: {
        sl_fetch_resp r;
        if (sl_fetch_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].topic);
                for (k = 0; k < r.topics[i].nparts; k++)
                    walk_records(ch, r.topics[i].topic,
                                 r.topics[i].parts[k].partition,
                                 r.topics[i].parts[k].records,
                                 r.topics[i].parts[k].records_len);
            }
        break;
    }
    case SL_API_LIST_OFFSETS: {
        sl_list_offsets_resp r;
        if (sl_list_offsets_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].topic);
                fz_touch(r.topics[i].parts,
                         r.topics[i].nparts * sizeof(sl_lo_part_resp));
            }
        break;
    }
    case SL_API_GROUP_JOIN: {
        sl_group_join_resp r;
        if (sl_group_join_resp_decode(body, len, a, &r) == SL_OK) {
            fz_str(r.member_id);
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.assignment[i].topic);
                fz_touch(r.assignment[i].parts,
                         r.assignment[i].nparts * sizeof(uint32_t));
            }
        }
        break;
    }
    case SL_API_GROUP_HEARTBEAT:
        if (sl_status_resp_decode(body, len, &err, &msg) == SL_OK)
            fz_str(msg);
        break;
    case SL_API_OFFSET_COMMIT: {
        sl_offset_commit_resp r;
        if (sl_offset_commit_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].topic);
                fz_touch(r.topics[i].parts,
                         r.topics[i].nparts * sizeof(sl_part_err));
            }
        break;
    }
    case SL_API_OFFSET_FETCH: {
        sl_offset_fetch_resp r;
        if (sl_offset_fetch_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].topic);
                for (k = 0; k < r.topics[i].nparts; k++)
                    fz_str(r.topics[i].parts[k].metadata);
            }
        break;
    }
    case SL_API_GROUP_LIST: {
        sl_group_list_resp r;
        if (sl_group_list_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ngroups; i++) {
                fz_str(r.groups[i].group);
                fz_str(r.groups[i].state);
            }
        break;
    }
    case SL_API_GROUP_DESCRIBE: {
        sl_group_describe_resp r;
        if (sl_group_describe_resp_decode(body, len, a, &r) == SL_OK) {
            fz_str(r.group);
            fz_str(r.state);
            fz_str(r.dlq_topic);
            for (i = 0; i < r.nmembers; i++) {
                fz_str(r.members[i].member_id);
                fz_str(r.members[i].client_id);
                for (k = 0; k < r.members[i].nassigned; k++)
                    fz_str(r.members[i].assigned[k].topic);
            }
            for (i = 0; i < r.nparts; i++)
                fz_str(r.parts[i].topic);
        }
        break;
    }
    case SL_API_QUEUE_ACQUIRE: {
        sl_queue_acquire_resp r;
        if (sl_queue_acquire_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.nparts; i++) {
                fz_touch(r.parts[i].entries,
                         r.parts[i].nentries * sizeof(sl_qentry));
                walk_records(ch, SL_STR_LIT("t"), r.parts[i].partition,
                             r.parts[i].records, r.parts[i].records_len);
            }
        break;
    }
    case SL_API_QUEUE_ACK: {
        sl_qsettle_resp r;
        if (sl_qsettle_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.nparts; i++)
                fz_touch(r.parts[i].ranges,
                         r.parts[i].nranges * sizeof(sl_qrange_result));
        break;
    }
    case SL_API_DLQ_LIST: {
        sl_dlq_list_resp r;
        if (sl_dlq_list_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.ndlqs; i++) {
                fz_str(r.dlqs[i].dlq_topic);
                fz_str(r.dlqs[i].source_topic);
                fz_str(r.dlqs[i].group);
            }
        break;
    }
    case SL_API_DLQ_REDRIVE: {
        sl_dlq_redrive_resp r;
        (void)sl_dlq_redrive_resp_decode(body, len, &r);
        break;
    }
    case SL_API_QUEUE_GROUP_CONFIG: {
        sl_queue_group_config_resp r;
        if (sl_queue_group_config_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.nconfigs; i++) {
                fz_str(r.configs[i].key);
                fz_str(r.configs[i].value);
            }
        break;
    }
    case SL_API_ADMIN: {
        sl_admin_resp r;
        if (sl_admin_resp_decode(body, len, &r) == SL_OK) {
            fz_str(r.error_msg);
            fz_touch(r.json, r.json_len);
        }
        break;
    }
    case SL_API_CLUSTER_STATUS: {
        sl_cluster_status_resp r;
        if (sl_cluster_status_resp_decode(body, len, a, &r) == SL_OK) {
            for (i = 0; i < r.nnodes; i++) {
                fz_str(r.nodes[i].raft_addr);
                fz_str(r.nodes[i].addr);
                fz_str(r.nodes[i].stomp_addr);
            }
            for (i = 0; i < r.ntopics; i++) {
                fz_str(r.topics[i].name);
                for (uint32_t j = 0; j < r.topics[i].nparts; j++) {
                    sl_cl_part *cp = &r.topics[i].parts[j];
                    fz_touch(cp->replicas, cp->nreplicas * sizeof(int32_t));
                    fz_touch(cp->isr, cp->nisr * sizeof(int32_t));
                }
            }
        }
        break;
    }
    case SL_API_INIT_PRODUCER_ID: {
        sl_init_pid_resp r;
        if (sl_init_pid_resp_decode(body, len, &r) == SL_OK)
            fz_str(r.error_msg);
        break;
    }
    case SL_API_SASL_HANDSHAKE: {
        sl_sasl_handshake_resp r;
        if (sl_sasl_handshake_resp_decode(body, len, a, &r) == SL_OK)
            for (i = 0; i < r.nmechanisms; i++)
                fz_str(r.mechanisms[i]);
        break;
    }
    case SL_API_SASL_AUTHENTICATE: {
        sl_sasl_auth_resp r;
        if (sl_sasl_auth_resp_decode(body, len, &r) == SL_OK) {
            fz_str(r.error_msg);
            fz_touch(r.data, r.len);
        }
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint16_t api;
    size_t off = 0;
    sl_arena a;

    if (size < 1)
        return 0;
    api = apis[data[0] % NAPIS];
    data++;
    size--;
    sl_arena_init(&a);
    while (off < size) {
        size_t flen = 0;
        uint32_t corr;
        sl_chunk *ch;
        int rc = sl_frame_peek(data + off, size - off, FZ_MAX_FRAME, &flen);
        if (rc != SL_OK)
            break;
        /* The client keeps each frame in a refcounted chunk that messages
         * borrow from: a private copy, so ASan knows its exact size. */
        ch = sl_chunk_new(flen);
        if (!ch)
            break;
        memcpy(sl_chunk_ptr(ch), data + off, flen);
        if (sl_resp_hdr_decode(sl_chunk_ptr(ch), flen, &corr) == SL_OK)
            decode_body(api, ch, sl_chunk_ptr(ch) + SL_RESP_HDR_SIZE,
                        flen - SL_RESP_HDR_SIZE, &a);
        sl_chunk_unref(ch);
        sl_arena_reset(&a);
        off += flen;
    }
    sl_arena_fini(&a);
    return 0;
}
