/*
 * stomp_dest.c - STOMP destination names, topic wildcards and temp-queue
 * ownership. Pure: no socket, no broker state (tests/unit/test_stomp_sub.c).
 *
 * A destination header resolves to a kind and a topic name:
 *
 *   /queue/NAME, /amq/queue/NAME, /reply-queue/NAME,  queue group NAME on
 *   a bare NAME, /exchange/amq.default/NAME,           topic NAME
 *   /exchange//NAME
 *   /queue/Consumer.G.VirtualTopic.X                   queue group G on
 *                                                      topic VirtualTopic.X
 *   /topic/NAME, /exchange/amq.topic/NAME              broadcast (wildcards)
 *   /exchange/amq.direct/KEY                           broadcast on topic KEY
 *   /exchange/amq.fanout[/KEY]                         broadcast on topic
 *                                                      "amq.fanout"
 *   /temp-queue/NAME                                   this connection's
 *                                                      queue "stomp-tmp-S-NAME"
 *
 * Queues are queue groups of the same name on the topic of that name, so
 * /queue/X and /topic/X are one log (docs/stomp.md). S is the session.
 * ActiveMQ's virtual topics are the same idea: every consumer queue
 * Consumer.G.VirtualTopic.X is the queue group G on the one topic
 * VirtualTopic.X. A refused destination names the ERROR's message in
 * RabbitMQ's words (Missing destination, Invalid destination, Unknown
 * destination, not_found for an exchange that does not exist).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/stomp_int.h"

static int has_prefix(const char *s, const char *p, const char **rest)
{
    size_t n = strlen(p);
    if (strncmp(s, p, n) != 0)
        return 0;
    *rest = s + n;
    return 1;
}

/* Refuse s: d->err is the ERROR's message header (RabbitMQ's words), why
 * the detail for its body. */
static sl_err refuse(dest *d, const char *err, char *why, size_t whylen,
                     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static sl_err refuse(dest *d, const char *err, char *why, size_t whylen,
                     const char *fmt, ...)
{
    va_list ap;
    d->err = err;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return SL_ERR_INVALID_ARG;
}

/* ActiveMQ's virtual topic consumer queue, "Consumer.GROUP.VirtualTopic.X":
 * the queue group GROUP on topic "VirtualTopic.X". 1 when name is one. */
static int virtual_topic(const char *name, dest *d)
{
    const char *g = name + 9, *dot;
    size_t gl;
    if (strncmp(name, "Consumer.", 9) != 0)
        return 0;
    dot = strchr(g, '.');
    if (!dot || dot == g || strncmp(dot + 1, "VirtualTopic.", 13) != 0 ||
        !dot[14])
        return 0;
    gl = (size_t)(dot - g);
    if (gl >= sizeof(d->group))
        return 0;
    memcpy(d->group, g, gl);
    d->group[gl] = 0;
    memmove(d->name, dot + 1, strlen(dot + 1) + 1);
    return 1;
}

sl_err stomp_dest_parse(const char *session, const char *s, dest *d, char *why,
                        size_t whylen)
{
    const char *rest = NULL;
    size_t i, n;
    memset(d, 0, sizeof(*d));
    if (!s || !*s)
        return refuse(d, "Missing destination", why, whylen,
                      "missing destination header");
    if (has_prefix(s, "/queue/", &rest) ||
        has_prefix(s, "/amq/queue/", &rest) ||
        has_prefix(s, "/reply-queue/", &rest) ||
        has_prefix(s, "/exchange/amq.default/", &rest) ||
        has_prefix(s, "/exchange//", &rest)) {
        /* the default exchange routes to the queue of the key's name */
        d->kind = DEST_QUEUE;
    } else if (has_prefix(s, "/topic/", &rest)) {
        d->kind = DEST_TOPIC;
        d->prefix = "/topic/";
    } else if (has_prefix(s, "/exchange/amq.topic/", &rest)) {
        d->kind = DEST_TOPIC;
        d->prefix = "/exchange/amq.topic/";
    } else if (has_prefix(s, "/exchange/amq.direct/", &rest)) {
        /* every subscriber gets its copy of what is sent with its key
         * (RabbitMQ binds an exclusive queue per SUBSCRIBE): a topic,
         * matched literally */
        d->kind = DEST_TOPIC;
        d->literal = 1;
    } else if (strcmp(s, "/exchange/amq.fanout") == 0 ||
               strncmp(s, "/exchange/amq.fanout/", 21) == 0) {
        d->kind = DEST_TOPIC;
        snprintf(d->name, sizeof(d->name), "amq.fanout");
        return SL_OK;
    } else if (has_prefix(s, "/temp-queue/", &rest)) {
        d->kind = DEST_TEMP;
        if (!*rest || strlen(rest) > 128)
            return refuse(d, "Invalid destination", why, whylen,
                          "invalid temp-queue name in '%.100s'", s);
        snprintf(d->name, sizeof(d->name), "stomp-tmp-%s-%s", session, rest);
        if (sl_topic_name_check(d->name, strlen(d->name)) != SL_OK)
            return refuse(d, "Invalid destination", why, whylen,
                          "invalid temp-queue name in '%.100s' (use "
                          "[A-Za-z0-9._-])",
                          s);
        return SL_OK;
    } else if (strncmp(s, "/exchange/", 10) == 0) {
        return refuse(d, "not_found", why, whylen,
                      "unsupported exchange in destination '%.100s': no "
                      "such exchange (supported: amq.topic, amq.direct, "
                      "amq.fanout and the default exchange)",
                      s);
    } else if (s[0] == '/') {
        return refuse(d, "Unknown destination", why, whylen,
                      "unknown destination '%.100s' (use /queue/NAME, "
                      "/topic/NAME, /temp-queue/NAME, /exchange/amq.topic/KEY, "
                      "/exchange/amq.direct/KEY, /exchange/amq.fanout, "
                      "/amq/queue/NAME or a bare NAME)",
                      s);
    } else {
        /* a bare NAME is a queue, as in ActiveMQ and RabbitMQ 3.10 */
        d->kind = DEST_QUEUE;
        rest = s;
    }
    n = strlen(rest);
    if (n == 0 || n > SL_TOPIC_NAME_MAX)
        return refuse(d, "Invalid destination", why, whylen,
                      "invalid destination '%.100s': empty or "
                      "longer than 249 characters",
                      s);
    memcpy(d->name, rest, n + 1);
    if (d->kind == DEST_QUEUE && virtual_topic(d->name, d))
        n = strlen(d->name);
    if (d->kind == DEST_TOPIC && !d->literal) {
        for (i = 0; i < n; i++) {
            if (rest[i] == '*' || rest[i] == '#' || rest[i] == '>')
                d->wildcard = 1;
        }
        if (d->wildcard)
            return SL_OK;
    }
    if (sl_topic_name_check(d->name, n) != SL_OK ||
        (d->group[0] &&
         sl_topic_name_check(d->group, strlen(d->group)) != SL_OK))
        return refuse(d, "Invalid destination", why, whylen,
                      "invalid destination '%.100s': names are 1-249 "
                      "characters of [A-Za-z0-9._-]",
                      s);
    return SL_OK;
}

int stomp_wild_match(const char *p, const char *t)
{
    if (*p == 0)
        return *t == 0;
    if (p[0] == '#' && (p[1] == 0 || p[1] == '.')) {
        const char *np = p[1] ? p + 2 : p + 1;
        if (p[1] == 0)
            return 1;
        /* zero words */
        if (stomp_wild_match(np, t))
            return 1;
        /* one or more words */
        while (*t) {
            const char *dot = strchr(t, '.');
            if (!dot)
                return 0;
            t = dot + 1;
            if (stomp_wild_match(np, t))
                return 1;
        }
        return 0;
    }
    if (p[0] == '>' && p[1] == 0)
        return *t != 0;
    if (p[0] == '*' && (p[1] == 0 || p[1] == '.')) {
        const char *dot = strchr(t, '.');
        if (*t == 0 || t[0] == '.')
            return 0;
        if (p[1] == 0)
            return dot == NULL;
        return dot && stomp_wild_match(p + 2, dot + 1);
    }
    {
        /* literal word */
        const char *pe = strchr(p, '.'), *te = strchr(t, '.');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t tl = te ? (size_t)(te - t) : strlen(t);
        if (pl != tl || memcmp(p, t, pl) != 0)
            return 0;
        if (!pe)
            return te == NULL;
        if (!te) {
            /* the topic ended: the rest matches only if it is '#' words,
             * which may match zero words ("a.#" matches "a", RabbitMQ) */
            const char *r = pe + 1;
            while (r[0] == '#' && (r[1] == 0 || r[1] == '.')) {
                if (r[1] == 0)
                    return 1;
                r += 2;
            }
            return 0;
        }
        return stomp_wild_match(pe + 1, te + 1);
    }
}

/* A temp queue ("stomp-tmp-S-NAME") is its connection's alone, as in
 * RabbitMQ (exclusive) and ActiveMQ: others may SEND to it (reply-to) but
 * not read it, not even through a wildcard. */
int stomp_tmp_foreign(const char *session, const char *topic)
{
    size_t n = strlen(session);
    if (strncmp(topic, "stomp-tmp-", 10) != 0)
        return 0;
    return strncmp(topic + 10, session, n) != 0 || topic[10 + n] != '-';
}
