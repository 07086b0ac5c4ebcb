/*
 * stomp_ack.c - ack modes, message and ack ids, and a subscription's list
 * of unacknowledged deliveries. Pure: no socket, no broker state
 * (tests/unit/test_stomp_sub.c).
 *
 * A delivery's message-id is "topic/partition/offset"; the 1.2 ack header
 * adds "#subscription-id", since one connection may hold the same record in
 * two subscriptions (a queue and a durable topic subscription over the same
 * topic, overlapping wildcards). In ack:client an ACK settles every
 * delivery of its subscription up to and including the one it names
 * (cumulative); in client-individual only that one. stomp_sub.c settles
 * what stomp_pendq_take hands it with the queue group.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/stomp_int.h"

const char *const stomp_ack_names[] = {"auto", "client", "client-individual"};

/* The form every id has that this broker wrote: "topic/P/O" or
 * "topic/P/O#sub" with plain digits (P up to 9, O up to 18), in one pass
 * (once per ACK). 0, or -1 for anything else, which stomp_msgid_parse
 * then reads as before. */
static int msgid_plain(const char *id, char *topic, size_t tl, int32_t *part,
                       int64_t *off, const char **sub)
{
    size_t a = 0, i, d;
    int64_t p = 0, o = 0;
    while (id[a] && id[a] != '/')
        a++;
    if (id[a] != '/' || a == 0 || a >= tl)
        return -1;
    for (i = a + 1, d = 0; id[i] >= '0' && id[i] <= '9' && d < 9; i++, d++)
        p = p * 10 + (id[i] - '0');
    if (d == 0 || id[i] != '/')
        return -1;
    for (i++, d = 0; id[i] >= '0' && id[i] <= '9' && d < 18; i++, d++)
        o = o * 10 + (id[i] - '0');
    if (d == 0 || (id[i] != 0 && id[i] != '#'))
        return -1;
    memcpy(topic, id, a);
    topic[a] = 0;
    *part = (int32_t)p;
    *off = o;
    *sub = id[i] == '#' ? id + i + 1 : NULL;
    return 0;
}

int stomp_msgid_parse(const char *id, char *topic, size_t tl, int32_t *part,
                      int64_t *off, const char **sub)
{
    const char *a, *b2, *hash;
    int ok1, ok2;
    char pb[16], ob[24];
    if (msgid_plain(id, topic, tl, part, off, sub) == 0)
        return 0;
    a = strchr(id, '/');
    if (!a || (size_t)(a - id) >= tl || a == id)
        return -1;
    b2 = strchr(a + 1, '/');
    if (!b2 || (size_t)(b2 - a - 1) >= sizeof(pb))
        return -1;
    memcpy(topic, id, (size_t)(a - id));
    topic[a - id] = 0;
    memcpy(pb, a + 1, (size_t)(b2 - a - 1));
    pb[b2 - a - 1] = 0;
    *part = (int32_t)parse_i64(pb, &ok1);
    hash = strchr(b2 + 1, '#');
    *sub = hash ? hash + 1 : NULL;
    if (hash) {
        if ((size_t)(hash - b2 - 1) >= sizeof(ob))
            return -1;
        memcpy(ob, b2 + 1, (size_t)(hash - b2 - 1));
        ob[hash - b2 - 1] = 0;
        *off = parse_i64(ob, &ok2);
    } else {
        *off = parse_i64(b2 + 1, &ok2);
    }
    return ok1 && ok2 ? 0 : -1;
}

int stomp_header_bool(const char *v, int dflt)
{
    if (v && strcasecmp(v, "true") == 0)
        return 1;
    if (v && strcasecmp(v, "false") == 0)
        return 0;
    return dflt;
}

int stomp_ack_mode_parse(const char *v)
{
    if (!v || strcmp(v, "auto") == 0)
        return ACK_AUTO;
    if (strcmp(v, "client") == 0)
        return ACK_CLIENT;
    if (strcmp(v, "client-individual") == 0)
        return ACK_INDIVIDUAL;
    return -1;
}

/* Freed entries kept for the next deliveries of this thread (a consumer
 * with prefetch N allocates N entries in a burst and frees them as its
 * ACKs come: past glibc's per-thread cache of 7, each malloc and free took
 * the arena's slow path, 3-4% of a relaying node's CPU). Entries are
 * plain malloc blocks, so free() of one stays right. Not under ASan,
 * which is to see a use after free of one. */
#if defined(__SANITIZE_ADDRESS__)
#define PEND_POOL_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PEND_POOL_MAX 0
#endif
#endif
#ifndef PEND_POOL_MAX
#define PEND_POOL_MAX 8192
#endif
static __thread pend *pend_pool;
static __thread size_t pend_pool_n;

void stomp_pend_free(pend *p)
{
#if PEND_POOL_MAX == 0
    free(p);
    return;
#else
    if (pend_pool_n >= PEND_POOL_MAX) {
        free(p);
        return;
    }
#endif
    p->next = pend_pool;
    pend_pool = p;
    pend_pool_n++;
}

int stomp_pendq_push(stomp_pendq *q, treader *r, const char *topic,
                     int32_t partition, int64_t offset)
{
    pend *p = pend_pool;
    if (p) {
        pend_pool = p->next;
        pend_pool_n--;
    } else if (!(p = malloc(sizeof(*p)))) {
        return -1;
    }
    p->next = NULL;
    p->r = r;
    p->topic = topic;
    p->partition = partition;
    p->offset = offset;
    p->seq = 0;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    q->n++;
    return 0;
}

pend *stomp_pendq_find(const stomp_pendq *q, const char *topic,
                       int32_t partition, int64_t offset, pend **prev_out)
{
    pend *p, *prev = NULL;
    for (p = q->head; p; prev = p, p = p->next) {
        if (p->partition == partition && p->offset == offset &&
            strcmp(p->topic, topic) == 0) {
            *prev_out = prev;
            return p;
        }
    }
    return NULL;
}

void stomp_pendq_retopic(stomp_pendq *q, const char *from, const char *to)
{
    for (pend *p = q->head; p; p = p->next)
        if (p->topic == from)
            p->topic = to;
}

pend *stomp_pendq_take(stomp_pendq *q, pend *prev, pend *ent, int cumulative)
{
    pend *chain;
    if (cumulative) {
        /* everything up to and including ent */
        pend *p;
        chain = q->head;
        q->head = ent->next;
        if (!q->head)
            q->tail = NULL;
        for (p = chain; p != ent; p = p->next)
            q->n--;
        q->n--;
        ent->next = NULL;
        return chain;
    }
    if (prev)
        prev->next = ent->next;
    else
        q->head = ent->next;
    if (q->tail == ent)
        q->tail = prev;
    q->n--;
    ent->next = NULL;
    return ent;
}

void stomp_pendq_clear(stomp_pendq *q)
{
    pend *p, *n;
    for (p = q->head; p; p = n) {
        n = p->next;
        stomp_pend_free(p);
    }
    q->head = q->tail = NULL;
    q->n = 0;
}
