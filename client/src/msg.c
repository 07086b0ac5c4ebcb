/*
 * msg.c - refcounted chunks and received messages. A message is one
 * allocation (struct, header array, topic copy) that borrows key, value and
 * header bytes from a chunk (the response frame or a decompressed batch).
 */
#include <stdlib.h>
#include <string.h>

#include "client/src/internal.h"
#include "protocol/batch.h"
#include "protocol/hash.h"

sl_chunk *sl_chunk_new(size_t len)
{
    sl_chunk *c = malloc(sizeof(*c) + len);
    if (!c)
        return NULL;
    c->refs = 1;
    c->len = len;
    c->ext = NULL;
    return c;
}

sl_chunk *sl_chunk_adopt(uint8_t *p, size_t len)
{
    sl_chunk *c = malloc(sizeof(*c));
    if (!c) {
        free(p);
        return NULL;
    }
    c->refs = 1;
    c->len = len;
    c->ext = p;
    return c;
}

void sl_chunk_ref(sl_chunk *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void sl_chunk_unref(sl_chunk *c)
{
    if (!c)
        return;
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(c->ext);
        free(c);
    }
}

typedef struct msg_impl {
    sluice_message pub;
    sl_chunk *chunk; /* ref held */
} msg_impl;

sluice_message *sl_msg_new(const char *topic, size_t topic_len,
                           int32_t partition, const struct sl_record *rec,
                           sl_chunk *chunk)
{
    size_t nh = rec->header_count, i;
    size_t sz = sizeof(msg_impl) + nh * sizeof(sluice_header) + topic_len + 1;
    msg_impl *m;
    sluice_header *hs;
    char *t;
    sl_header h;

    if (nh > rec->headers_len) /* each header takes >= 2 bytes */
        return NULL;
    m = malloc(sz);
    if (!m)
        return NULL;
    hs = (sluice_header *)(m + 1);
    t = (char *)(hs + nh);
    memcpy(t, topic, topic_len);
    t[topic_len] = '\0';
    sl_header_iter hi;
    sl_record_headers_begin(rec, &hi);
    for (i = 0; i < nh; i++) {
        if (sl_record_headers_next(&hi, &h) != SL_OK) {
            free(m);
            return NULL;
        }
        hs[i].key = h.key;
        hs[i].key_len = h.key_len;
        hs[i].value = h.value;
        hs[i].value_len = h.value ? h.value_len : 0;
    }
    m->pub.topic = t;
    m->pub.partition = partition;
    m->pub.offset = rec->offset;
    m->pub.timestamp = rec->timestamp;
    m->pub.key = rec->key;
    m->pub.key_len = rec->key_len > 0 ? (size_t)rec->key_len : 0;
    m->pub.value = rec->value;
    m->pub.value_len = rec->value_len > 0 ? (size_t)rec->value_len : 0;
    m->pub.headers = nh ? hs : NULL;
    m->pub.header_count = nh;
    m->pub.attempts = 0;
    m->pub.failures = 0;
    m->pub.lock_deadline = 0;
    m->chunk = chunk;
    sl_chunk_ref(chunk);
    return &m->pub;
}

void sluice_message_free(sluice_message *msg)
{
    msg_impl *m = (msg_impl *)msg;
    if (!m)
        return;
    sl_chunk_unref(m->chunk);
    free(m);
}

const sluice_header *sluice_message_header(const sluice_message *msg,
                                           const char *key)
{
    size_t i, kl = strlen(key);
    for (i = 0; i < msg->header_count; i++)
        if (msg->headers[i].key_len == kl &&
            memcmp(msg->headers[i].key, key, kl) == 0)
            return &msg->headers[i];
    return NULL;
}

int32_t sluice_partition_for_key(const void *key, size_t key_len,
                                 int32_t partitions)
{
    return sl_partition_for_key(key, key_len, partitions);
}
