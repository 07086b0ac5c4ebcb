/*
 * auth_guest.c - the default set-up's one login: guest/guest, from
 * loopback only (RabbitMQ's guest user, issue 19).
 *
 * Without users (auth.c, point 2) a client that does not log in is the
 * anonymous user with every right. A client that does log in (STOMP
 * CONNECT with a login, binary SASL) used to be let in whatever it sent;
 * an application tested that way never saw its wrong password refused.
 * Now such a login is checked like any other (the check threads, the
 * slow-down, the audit line) against one built-in user: guest, password
 * guest, with every right (an administrator, as RabbitMQ's guest is),
 * found only while the store has no user and only for a peer on
 * loopback. Any other name, a wrong password, or guest from another
 * address fails as an unknown user does. Once a user exists, guest does
 * not, unless someone adds a user of that name.
 *
 * The guest's SCRAM credentials (4,096 iterations, a salt derived from
 * the per-process secret) are made on first use and kept on sl_auth.
 * @thread loop
 */
#include <stdio.h>
#include <string.h>

#include "broker/auth_int.h"

#define GUEST "guest"

int auth_addr_loopback(const char *addr)
{
    char host[80];
    auth_peer_addr(addr, host, sizeof(host));
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        if (host[0] && host[strlen(host) - 1] == ']')
            host[strlen(host) - 1] = 0;
    }
    if (!strncmp(host, "::ffff:", 7)) /* IPv4-mapped */
        memmove(host, host + 7, strlen(host + 7) + 1);
    return !strncmp(host, "127.", 4) || !strcmp(host, "localhost") ||
           !strcmp(host, "::1");
}

static const sl_user *guest_user(sl_auth *a)
{
    uint8_t salted[SL_SCRAM_KEY_LEN];
    sl_user *u = &a->guest;
    if (a->guest_ready)
        return u;
    /* the fake user's salt and iterations, real keys */
    auth_fake_user(a, GUEST, u);
    if (sl_scram_salted(GUEST, strlen(GUEST), u->salt, u->saltlen, u->iter,
                        salted) != SL_OK)
        return NULL;
    sl_scram_keys(salted, NULL, u->stored_key, u->server_key);
    u->admin = 1;
    u->created_ms = sl_now_ms();
    a->guest_ready = 1;
    return u;
}

const sl_user *auth_login_user(sl_auth *a, const char *name, const char *peer)
{
    const sl_user *u = sl_auth_user_find(a->b, name);
    if (u || a->nusers > 0 || !name || strcmp(name, GUEST) != 0 ||
        !auth_addr_loopback(peer))
        return u;
    return guest_user(a);
}

int sl_auth_guest_remote(sl_broker *b, const char *peer, const char *user,
                         const char *proto, char *why, size_t n)
{
    sl_auth *a = auth_of(b);
    if (!a || a->nusers > 0 || !user || strcmp(user, GUEST) != 0 ||
        auth_addr_loopback(peer))
        return 0;
    snprintf(why, n,
             "user '" GUEST "' can only connect via localhost: no users "
             "are configured, and the default set-up's guest/guest works "
             "only from loopback (create users with sluice user add, or "
             "connect without a login)");
    if (auth_audit_take(a, 0)) {
        char addr[64];
        auth_peer_addr(peer, addr, sizeof(addr));
        sl_auth_audit("authentication failed: user '" GUEST "' from %s over "
                      "%s: guest can only connect via localhost",
                      addr, proto);
    }
    return 1;
}
