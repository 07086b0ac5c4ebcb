/*
 * admin.h - the management operations of sluiced, in one place.
 *
 * Every management operation is a verb with string arguments answering a
 * JSON document: "queues", "topic.alter", "group.reset", ... The binary
 * protocol carries them in the ADMIN api (29; docs/protocol.md 4.29), the
 * HTTP API maps its routes onto them (broker/http.c, docs/http-api.md),
 * and the CLI, libsluice and Python call them through ADMIN. One verb
 * table, so every front end sees the same operation and the same JSON.
 *
 * Verbs that change group state answer once the change is committed to
 * groups.db (sl_groups_wait); the rest answer at once.
 * @thread loop
 */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "broker/ops.h"

/* Arguments: n key/value pairs (a key may repeat: "config"). Borrowed for
 * the duration of sl_admin_run only. */
typedef struct sl_admin_args {
    size_t n;
    const char *const *keys;
    const char *const *values;
    /* Who asks (broker/acl.c checks what the verb needs): the logged-in
     * user or NULL, whether it has the admin role, its address. */
    const char *user;
    int admin;
    const char *peer;
} sl_admin_args;

/* The answer: rc SL_OK with the JSON document in json, or an error with
 * msg naming the problem (json empty). json and msg are valid during the
 * call only. */
typedef void (*sl_admin_done_fn)(void *arg, sl_err rc, const char *msg,
                                 struct evbuffer *json);

typedef struct sl_admin_call sl_admin_call;

/*
 * Run verb with args; done runs exactly once, possibly before this
 * returns, unless sl_admin_cancel is called first. Returns the call
 * (for sl_admin_cancel) or NULL when done already ran.
 */
sl_admin_call *sl_admin_run(sl_broker *b, const char *verb,
                            const sl_admin_args *args, sl_admin_done_fn done,
                            void *arg);
/* The requester went away: done will not run (the call frees itself). */
void sl_admin_cancel(sl_admin_call *x);

/* Names of the verbs, NULL-terminated (for help and docs). */
const char *const *sl_admin_verbs(void);

/* Module life cycle: registers the ADMIN binary api and starts the HTTP
 * listener (broker/http.c). */
void sl_admin_module_init(sl_broker *b);
void sl_admin_module_fini(sl_broker *b);

#endif
