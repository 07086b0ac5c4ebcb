/*
 * fuzz_request.c - the broker's view of the binary protocol: a byte stream
 * of pipelined request frames, cut with sl_frame_peek, headers decoded with
 * sl_req_hdr_decode and checked with sl_api_check, each body handed to the
 * request decoder of its api (every api of protocol/api.h), as
 * broker/conn.c and broker/binary.c do. Every decoded string and record
 * field is read in full; produce records are walked with sl_records_next
 * and verified as the broker does before an append.
 */
#include "tests/fuzz/fuzz_common.h"

#include "protocol/batch.h"

#define FZ_MAX_FRAME (1u << 20)

static void touch_records(uint8_t *p, size_t len)
{
    size_t off = 0, boff, blen;
    sl_err e;
    sl_batch_hdr h;
    fz_touch(p, len);
    while (sl_records_next(p, len, &off, &boff, &blen, &e))
        (void)sl_batch_verify(p + boff, blen, &h);
}

static void decode_body(uint16_t api, uint8_t *body, size_t len, sl_arena *a)
{
    uint32_t i, k;
    switch (api) {
    case SL_API_HANDSHAKE: {
        sl_handshake_req q;
        if (sl_handshake_req_decode(body, len, a, &q) == SL_OK) {
            fz_str(q.client_name);
            fz_touch(q.apis, q.napis * sizeof(*q.apis));
        }
        break;
    }
    case SL_API_METADATA: {
        sl_metadata_req q;
        if (sl_metadata_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++)
                fz_str(q.topics[i]);
        break;
    }
    case SL_API_CREATE_TOPICS: {
        sl_create_topics_req q;
        if (sl_create_topics_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++) {
                fz_str(q.topics[i].name);
                for (k = 0; k < q.topics[i].nconfigs; k++) {
                    fz_str(q.topics[i].configs[k].key);
                    fz_str(q.topics[i].configs[k].value);
                }
            }
        break;
    }
    case SL_API_DELETE_TOPICS: {
        sl_delete_topics_req q;
        if (sl_delete_topics_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++)
                fz_str(q.topics[i]);
        break;
    }
    case SL_API_LIST_TOPICS:
        (void)sl_list_topics_req_decode(body, len);
        break;
    case SL_API_PRODUCE: {
        sl_produce_req q;
        if (sl_produce_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++) {
                fz_str(q.topics[i].topic);
                for (k = 0; k < q.topics[i].nparts; k++)
                    touch_records(q.topics[i].parts[k].records,
                                  q.topics[i].parts[k].records_len);
            }
        break;
    }
    case SL_API_FETCH: {
        sl_fetch_req q;
        if (sl_fetch_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++) {
                fz_str(q.topics[i].topic);
                fz_touch(q.topics[i].parts,
                         q.topics[i].nparts * sizeof(sl_fetch_part));
            }
        break;
    }
    case SL_API_LIST_OFFSETS: {
        sl_list_offsets_req q;
        if (sl_list_offsets_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++) {
                fz_str(q.topics[i].topic);
                fz_touch(q.topics[i].parts,
                         q.topics[i].nparts * sizeof(sl_lo_part));
            }
        break;
    }
    case SL_API_GROUP_JOIN: {
        sl_group_join_req q;
        if (sl_group_join_req_decode(body, len, a, &q) == SL_OK) {
            fz_str(q.group);
            fz_str(q.member_id);
            fz_str(q.client_id);
            for (i = 0; i < q.ntopics; i++)
                fz_str(q.topics[i]);
        }
        break;
    }
    case SL_API_GROUP_HEARTBEAT:
    case SL_API_GROUP_LEAVE: {
        sl_group_member_req q;
        if (sl_group_member_req_decode(api, body, len, &q) == SL_OK) {
            fz_str(q.group);
            fz_str(q.member_id);
        }
        break;
    }
    case SL_API_OFFSET_COMMIT: {
        sl_offset_commit_req q;
        if (sl_offset_commit_req_decode(body, len, a, &q) == SL_OK) {
            fz_str(q.group);
            fz_str(q.member_id);
            for (i = 0; i < q.ntopics; i++) {
                fz_str(q.topics[i].topic);
                for (k = 0; k < q.topics[i].nparts; k++)
                    fz_str(q.topics[i].parts[k].metadata);
            }
        }
        break;
    }
    case SL_API_OFFSET_FETCH: {
        sl_offset_fetch_req q;
        if (sl_offset_fetch_req_decode(body, len, a, &q) == SL_OK) {
            fz_str(q.group);
            for (i = 0; i < q.ntopics; i++) {
                fz_str(q.topics[i].topic);
                fz_touch(q.topics[i].parts,
                         q.topics[i].nparts * sizeof(uint32_t));
            }
        }
        break;
    }
    case SL_API_GROUP_LIST:
        (void)sl_group_list_req_decode(body, len);
        break;
    case SL_API_GROUP_DESCRIBE: {
        sl_group_describe_req q;
        if (sl_group_describe_req_decode(body, len, &q) == SL_OK)
            fz_str(q.group);
        break;
    }
    case SL_API_QUEUE_ACQUIRE: {
        sl_queue_acquire_req q;
        if (sl_queue_acquire_req_decode(body, len, &q) == SL_OK) {
            fz_str(q.group);
            fz_str(q.topic);
            fz_str(q.consumer_id);
        }
        break;
    }
    case SL_API_QUEUE_ACK:
    case SL_API_QUEUE_NACK:
    case SL_API_QUEUE_REJECT:
    case SL_API_QUEUE_TOUCH: {
        sl_qsettle_req q;
        if (sl_qsettle_req_decode(api, body, len, a, &q) == SL_OK) {
            fz_str(q.group);
            fz_str(q.topic);
            fz_str(q.consumer_id);
            for (i = 0; i < q.nparts; i++)
                for (k = 0; k < q.parts[i].nranges; k++)
                    fz_str(q.parts[i].ranges[k].reason);
        }
        break;
    }
    case SL_API_DLQ_LIST: {
        sl_dlq_list_req q;
        if (sl_dlq_list_req_decode(body, len, &q) == SL_OK) {
            fz_str(q.topic);
            fz_str(q.group);
        }
        break;
    }
    case SL_API_DLQ_REDRIVE: {
        sl_dlq_redrive_req q;
        if (sl_dlq_redrive_req_decode(body, len, &q) == SL_OK) {
            fz_str(q.dlq_topic);
            fz_str(q.target_topic);
            fz_str(q.reason);
        }
        break;
    }
    case SL_API_QUEUE_GROUP_CONFIG: {
        sl_queue_group_config_req q;
        if (sl_queue_group_config_req_decode(body, len, a, &q) == SL_OK) {
            fz_str(q.group);
            fz_str(q.topic);
            for (i = 0; i < q.nconfigs; i++) {
                fz_str(q.configs[i].key);
                fz_str(q.configs[i].value);
            }
        }
        break;
    }
    case SL_API_CLUSTER_STATUS: {
        sl_cluster_status_req q;
        if (sl_cluster_status_req_decode(body, len, a, &q) == SL_OK)
            for (i = 0; i < q.ntopics; i++)
                fz_str(q.topics[i]);
        break;
    }
    case SL_API_ADMIN: {
        sl_admin_req q;
        if (sl_admin_req_decode(body, len, a, &q) == SL_OK) {
            fz_str(q.verb);
            for (i = 0; i < q.nargs; i++) {
                fz_str(q.args[i].key);
                fz_str(q.args[i].value);
            }
        }
        break;
    }
    case SL_API_CLUSTER_FORWARD: {
        const uint8_t *cmd = NULL;
        size_t clen = 0;
        if (sl_cluster_forward_req_decode(body, len, &cmd, &clen) == SL_OK)
            fz_touch(cmd, clen);
        break;
    }
    case SL_API_SASL_HANDSHAKE: {
        sl_sasl_handshake_req q;
        if (sl_sasl_handshake_req_decode(body, len, &q) == SL_OK)
            fz_str(q.mechanism);
        break;
    }
    case SL_API_SASL_AUTHENTICATE: {
        sl_sasl_auth_req q;
        if (sl_sasl_auth_req_decode(body, len, &q) == SL_OK)
            fz_touch(q.data, q.len);
        break;
    }
    case SL_API_INIT_PRODUCER_ID: {
        sl_init_pid_req q;
        (void)sl_init_pid_req_decode(body, len, &q);
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private, writable copy: produce decoding borrows mutable records. */
    uint8_t *buf = malloc(size ? size : 1);
    size_t off = 0;
    sl_arena a;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    sl_arena_init(&a);
    /* The broker caps decoded arrays at a multiple of its max frame. */
    sl_arena_set_limit(&a, 8 * (size_t)FZ_MAX_FRAME);
    while (off < size) {
        size_t flen = 0;
        sl_req_hdr h;
        int rc = sl_frame_peek(buf + off, size - off, FZ_MAX_FRAME, &flen);
        if (rc != SL_OK)
            break; /* partial, too large or malformed: the broker closes */
        if (flen > size - off || flen < SL_FRAME_LEN_SIZE)
            abort(); /* sl_frame_peek promised a whole frame */
        if (sl_req_hdr_decode(buf + off, flen, &h) == SL_OK &&
            sl_api_check(h.api_key, h.api_version) == SL_OK) {
            (void)sl_api_name(h.api_key);
            decode_body(h.api_key, buf + off + SL_REQ_HDR_SIZE,
                        flen - SL_REQ_HDR_SIZE, &a);
        }
        sl_arena_reset(&a);
        off += flen;
    }
    sl_arena_fini(&a);
    free(buf);
    return 0;
}
