/*
 * stomp_vhost.c - STOMP virtual hosts (RabbitMQ's vhosts, issue 19).
 *
 * The setting `vhosts` lists the virtual hosts besides the default one,
 * "/". Without it (the default) CONNECT's host header is not looked at
 * and every connection sees the same topics, as before. With it, host
 * must be absent, "/" or one of the list; anything else is ERROR
 * "Bad CONNECT" (RabbitMQ's words), body "Virtual host 'X' access
 * denied", and the connection closes.
 *
 * A vhost is a namespace of destinations: in vhost V the destination
 * named N (queue, topic, virtual topic, exchange key, durable
 * subscription name) is the topic (and queue group) "vhost.V.N". Vhost
 * names are [A-Za-z0-9_-] (no dot), so "vhost.V." never names something
 * of another vhost, and while vhosts are configured the default vhost may
 * not use names starting with "vhost." (ERROR Invalid destination) nor
 * see them through a wildcard. /queue/jobs in vhost a and in vhost b are
 * two queues, neither of them the default vhost's jobs. Temporary queues
 * (stomp-tmp-SESSION-NAME) stay as they are: the session makes them
 * unique, and a reply-to works across vhosts. A wildcard MESSAGE's
 * destination is the name within the vhost. Binary and HTTP clients see
 * the topics under their full names; users are limited to a vhost with
 * ACL rules on the prefix "vhost.V." (docs/stomp.md).
 * @thread loop
 */
#include <stdio.h>
#include <string.h>

#include "broker/config.h"
#include "broker/stomp_int.h"

#define VH_PREFIX "vhost."

static int vh_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* Call fn on each name of the list (not "/", not empty); stops at the
 * first non-zero return and returns it. */
static int vh_each(const char *list, int (*fn)(void *, const char *, size_t),
                   void *arg)
{
    const char *p = list ? list : "";
    while (*p) {
        const char *e;
        size_t n;
        int r;
        while (*p == ' ' || *p == ',')
            p++;
        e = p;
        while (*e && *e != ',')
            e++;
        n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
        if (n && !(n == 1 && p[0] == '/') && (r = fn(arg, p, n)) != 0)
            return r;
        p = e;
    }
    return 0;
}

typedef struct vh_err {
    char *err;
    size_t errlen;
} vh_err;

static int vh_check(void *arg, const char *name, size_t n)
{
    vh_err *e = arg;
    size_t i;
    for (i = 0; i < n && vh_char(name[i]); i++)
        ;
    if (i == n && n <= STOMP_VHOST_MAX)
        return 0;
    snprintf(e->err, e->errlen,
             "vhosts: '%.*s' is not a virtual host name: use 1..%d of "
             "A-Z a-z 0-9 _ - (comma-separated; / is the default vhost)",
             (int)(n > 80 ? 80 : n), name, STOMP_VHOST_MAX);
    return 1;
}

int sl_config_apply_vhosts(struct sl_config *cfg, char *err, size_t errlen)
{
    vh_err e = {err, errlen};
    return vh_each(cfg->vhosts, vh_check, &e);
}

static int vh_is(void *arg, const char *name, size_t n)
{
    const char *host = arg;
    return strlen(host) == n && memcmp(host, name, n) == 0;
}

static int vh_any(void *arg, const char *name, size_t n)
{
    (void)arg;
    (void)name;
    (void)n;
    return 1;
}

static int vh_configured(const stomp_conn *c)
{
    return vh_each(c->s->cfg->vhosts, vh_any, NULL);
}

int stomp_vhost_connect(stomp_conn *c, const char *host, int relay, char *why,
                        size_t whylen)
{
    c->vhost[0] = 0;
    if (!host || !host[0] || !strcmp(host, "/") || !vh_configured(c))
        return 0;
    if (vh_each(c->s->cfg->vhosts, vh_is, (void *)host)) {
        snprintf(c->vhost, sizeof(c->vhost), "%s", host);
        return 0;
    }
    if (relay) /* another node's relay session names its address there */
        return 0;
    snprintf(why, whylen,
             "Virtual host '%.100s' access denied: no such virtual host "
             "(this broker has / and %.200s; send host:/ for the default "
             "one)",
             host, c->s->cfg->vhosts);
    return -1;
}

/* name -> "vhost.V.name" in place; -1 when that is too long. */
static int vh_prefix(const stomp_conn *c, char *name, size_t cap)
{
    char tmp[SL_TOPIC_NAME_MAX + 1];
    int n = snprintf(tmp, sizeof(tmp), VH_PREFIX "%s.%s", c->vhost, name);
    if (n < 0 || (size_t)n >= sizeof(tmp) || (size_t)n >= cap)
        return -1;
    memcpy(name, tmp, (size_t)n + 1);
    return 0;
}

static int vh_reserved(const char *name)
{
    return !strncmp(name, VH_PREFIX, strlen(VH_PREFIX));
}

sl_err stomp_vhost_name(stomp_conn *c, char *name, size_t cap, char *why,
                        size_t whylen)
{
    if (!c->vhost[0]) {
        if (vh_reserved(name) && vh_configured(c)) {
            snprintf(why, whylen,
                     "invalid destination '%.100s': names starting with "
                     "'" VH_PREFIX "' are the virtual hosts' (connect with "
                     "host:VHOST instead)",
                     name);
            return SL_ERR_INVALID_ARG;
        }
        return SL_OK;
    }
    if (!strncmp(name, "stomp-tmp-", 10))
        return SL_OK; /* a temporary queue: the session names it */
    if (vh_prefix(c, name, cap) != 0) {
        snprintf(why, whylen,
                 "invalid destination '%.100s': too long in virtual host "
                 "'%s' (a name there is at most %d characters)",
                 name, c->vhost,
                 (int)(SL_TOPIC_NAME_MAX - strlen(VH_PREFIX) -
                       strlen(c->vhost) - 1));
        return SL_ERR_INVALID_ARG;
    }
    return SL_OK;
}

sl_err stomp_dest_resolve(stomp_conn *c, const char *s, dest *d, char *why,
                          size_t whylen)
{
    sl_err rc = stomp_dest_parse(c->session, s, d, why, whylen);
    if (rc != SL_OK || d->kind == DEST_TEMP)
        return rc;
    rc = stomp_vhost_name(c, d->name, sizeof(d->name), why, whylen);
    if (rc == SL_OK && d->group[0])
        rc = stomp_vhost_name(c, d->group, sizeof(d->group), why, whylen);
    if (rc != SL_OK)
        d->err = "Invalid destination";
    return rc;
}

int stomp_vhost_sees(const stomp_conn *c, const char *topic)
{
    /* a vhost's patterns carry its prefix; the default vhost's must not
     * reach into the vhosts */
    return c->vhost[0] || !vh_reserved(topic) || !vh_configured(c);
}

const char *stomp_vhost_local(const stomp_conn *c, const char *topic)
{
    size_t n = strlen(VH_PREFIX), vl = strlen(c->vhost);
    if (vl && !strncmp(topic, VH_PREFIX, n) &&
        !strncmp(topic + n, c->vhost, vl) && topic[n + vl] == '.')
        return topic + n + vl + 1;
    return topic;
}
