/*
 * broker/stomp_auth.c - STOMP password checks off the event loop.
 *
 * A stored password is a PBKDF2-SHA256 hash with a deliberately high
 * iteration count (docs/stomp.md suggests 200,000: about 50 ms of CPU
 * here). Run on the loop, every CONNECT would stall every connection for
 * that long, and a client sending wrong passwords could stall the broker
 * at will. So the loop hands each check to one worker thread and carries
 * on; the answer comes back through an event on the loop.
 *
 *   loop:   sl_stomp_auth_submit(stored, password, cb, arg) -> job
 *   worker: sl_stomp_password_ok(stored, password)
 *   loop:   cb(arg, ok), unless sl_stomp_auth_cancel(job) came first
 *
 * Checks run one at a time, in order; a cancelled job is still computed
 * (it is already cheap to let it finish) but its callback is not called.
 */
#include "broker/stomp_auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/stomp.h"

struct sl_stomp_auth_job {
    struct sl_stomp_auth_job *next;
    char *stored;
    char *password;
    int force_fail; /* unknown login: same work, always refused */
    int ok;
    int cancelled; /* loop thread only */
    sl_stomp_auth_cb cb;
    void *arg;
};

struct sl_stomp_auth {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sl_stomp_auth_job *todo, *todo_tail; /* guarded by mu */
    sl_stomp_auth_job *done;             /* guarded by mu */
    int stop;                            /* guarded by mu */
    struct event *done_ev;
};

static void job_free(sl_stomp_auth_job *j)
{
    if (!j)
        return;
    free(j->stored);
    if (j->password) {
        memset(j->password, 0, strlen(j->password));
        free(j->password);
    }
    free(j);
}

/* @thread worker */
static void *worker(void *arg)
{
    sl_stomp_auth *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        sl_stomp_auth_job *j;
        while (!a->todo && !a->stop)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->stop)
            break;
        j = a->todo;
        a->todo = j->next;
        if (!a->todo)
            a->todo_tail = NULL;
        pthread_mutex_unlock(&a->mu);
        j->ok = sl_stomp_password_ok(j->stored, j->password) && !j->force_fail;
        pthread_mutex_lock(&a->mu);
        j->next = a->done;
        a->done = j;
        event_active(a->done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* @thread loop */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_stomp_auth *a = arg;
    sl_stomp_auth_job *list, *rev = NULL;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&a->mu);
    list = a->done;
    a->done = NULL;
    pthread_mutex_unlock(&a->mu);
    while (list) { /* back to submission order */
        sl_stomp_auth_job *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        sl_stomp_auth_job *n = rev->next;
        if (!rev->cancelled)
            rev->cb(rev->arg, rev->ok);
        job_free(rev);
        rev = n;
    }
}

sl_err sl_stomp_auth_new(struct event_base *base, sl_stomp_auth **out)
{
    sl_stomp_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->done_ev = event_new(base, -1, 0, done_cb, a);
    if (!a->done_ev || pthread_create(&a->th, NULL, worker, a) != 0) {
        if (a->done_ev)
            event_free(a->done_ev);
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return SL_ERR_NOMEM;
    }
    *out = a;
    return SL_OK;
}

void sl_stomp_auth_free(sl_stomp_auth *a)
{
    sl_stomp_auth_job *j;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    while ((j = a->todo)) {
        a->todo = j->next;
        job_free(j);
    }
    while ((j = a->done)) {
        a->done = j->next;
        job_free(j);
    }
    event_free(a->done_ev);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

sl_stomp_auth_job *sl_stomp_auth_submit(sl_stomp_auth *a, const char *stored,
                                        const char *password, int force_fail,
                                        sl_stomp_auth_cb cb, void *arg)
{
    sl_stomp_auth_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->stored = strdup(stored);
    j->password = strdup(password);
    if (!j->stored || !j->password) {
        job_free(j);
        return NULL;
    }
    j->force_fail = force_fail;
    j->cb = cb;
    j->arg = arg;
    pthread_mutex_lock(&a->mu);
    if (a->todo_tail)
        a->todo_tail->next = j;
    else
        a->todo = j;
    a->todo_tail = j;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return j;
}

void sl_stomp_auth_cancel(sl_stomp_auth_job *j)
{
    if (j)
        j->cancelled = 1;
}

/* ---- users file ---------------------------------------------------------- */

sl_err sl_stomp_users_read(FILE *f, const char *name, sl_stomp_user **users,
                           size_t *nusers, char *err, size_t errlen)
{
    char line[1024];
    int ln = 0;
    while (fgets(line, sizeof(line), f)) {
        char *l = line, *sp, *e;
        sl_stomp_user *n;
        ln++;
        while (*l == ' ' || *l == '\t')
            l++;
        e = l + strlen(l);
        while (e > l && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
            *--e = 0;
        if (!*l || *l == '#')
            continue;
        sp = strpbrk(l, " \t");
        if (!sp) {
            snprintf(err, errlen, "%s:%d: expected `LOGIN HASH`", name, ln);
            return SL_ERR_INVALID_CONFIG;
        }
        *sp++ = 0;
        while (*sp == ' ' || *sp == '\t')
            sp++;
        if (strncmp(sp, "pbkdf2-sha256$", 14) != 0) {
            snprintf(err, errlen,
                     "%s:%d: hash of '%s' must start with pbkdf2-sha256$", name,
                     ln, l);
            return SL_ERR_INVALID_CONFIG;
        }
        n = realloc(*users, (*nusers + 1) * sizeof(*n));
        if (!n)
            return SL_ERR_NOMEM;
        *users = n;
        n[*nusers].login = strdup(l);
        n[*nusers].hash = strdup(sp);
        if (!n[*nusers].login || !n[*nusers].hash) {
            free(n[*nusers].login);
            free(n[*nusers].hash);
            return SL_ERR_NOMEM;
        }
        (*nusers)++;
    }
    if (*nusers == 0) {
        snprintf(err, errlen, "stomp-users-file %s has no users", name);
        return SL_ERR_INVALID_CONFIG;
    }
    return SL_OK;
}

void sl_stomp_users_free(sl_stomp_user *users, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        free(users[i].login);
        free(users[i].hash);
    }
    free(users);
}
