/* Unit tests of the connection layer (broker/conn.c): a line protocol
 * plugged into the STOMP listener of an in-process broker (port 0), with
 * real sockets on loopback, and the loop run from the test. Each line a
 * client sends is one request; what the protocol does with it is set per
 * test. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/config.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "broker/server.h"
#include "protocol/log.h"

/* ---- the test protocol --------------------------------------------------- */

enum mode {
    ECHO,      /* each line: a reply with the line, done at once */
    WAITED,    /* each line: a reply waiting on its own wait */
    HOLD,      /* each line: a reply never completed */
    HANDSHAKE, /* no reply; "hello" finishes the handshake */
};

typedef struct proto {
    enum mode mode;
    int opened, closed, hooks, lines;
    sl_conn *last;
    sl_wait *waits[64];
    int nwaits;
} proto;

typedef struct tstate {
    proto *p;
    sl_conn *c;
} tstate;

static void hook_cb(void *arg, sl_conn *c)
{
    proto *p = arg;
    (void)c;
    p->hooks++;
}

static void fail_fn(void *state, sl_reply *r, sl_err err, const char *what,
                    const char *note)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "ERR %s %s %s\n", sl_strerror(err),
                     what, note);
    (void)state;
    sl_reply_clear(r);
    sl_reply_add(r, line, (size_t)n);
    sl_reply_close_after(r);
}

static void noop_cancel(void *arg)
{
    (void)arg;
}

static void t_input(void *state, sl_conn *c, struct evbuffer *in)
{
    tstate *t = state;
    proto *p = t->p;
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
        sl_reply *r;
        if (!line)
            break;
        p->lines++;
        sl_conn_on_close(c, hook_cb, p);
        switch (p->mode) {
        case ECHO:
            r = sl_reply_new(c, 0);
            sl_reply_add(r, line, n);
            sl_reply_add(r, "\n", 1);
            sl_reply_done(r);
            break;
        case WAITED: {
            sl_wait *w = sl_wait_new(c);
            r = sl_reply_new(c, 0);
            sl_reply_add(r, line, n);
            sl_reply_add(r, "\n", 1);
            sl_wait_hold(w);
            sl_wait_set_what(w, "line %s", line);
            sl_reply_wait(r, w);
            sl_reply_on_fail(r, fail_fn, line);
            sl_reply_done(r);
            sl_wait_built(w);
            p->waits[p->nwaits++] = w; /* the held callback's reference */
            sl_wait_unref(w);          /* the builder's */
            break;
        }
        case HOLD:
            r = sl_reply_new(c, 0);
            sl_reply_set_cancel(r, noop_cancel, NULL);
            break;
        case HANDSHAKE:
            if (strcmp(line, "hello") == 0)
                sl_conn_handshake_done(c);
            break;
        }
        free(line);
        if (!sl_conn_reading(c))
            break;
    }
}

static sl_err t_open(void *arg, sl_conn *c, void **state)
{
    tstate *t = calloc(1, sizeof(*t));
    t->p = arg;
    t->c = c;
    t->p->opened++;
    t->p->last = c;
    *state = t;
    return SL_OK;
}

static void t_close(void *state, sl_conn *c)
{
    tstate *t = state;
    (void)c;
    t->p->closed++;
    free(t);
}

static const sl_conn_ops t_ops = {
    .name = "test",
    .flags = SL_CONN_HANDSHAKE,
    .on_open = t_open,
    .on_input = t_input,
    .on_close = t_close,
};

/* ---- fixture ---------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    sl_broker *b;
    proto p;
    int port, bin_port;
    char logpath[96];
    const sl_conn_ops *stomp_ops; /* STOMP's, put back before stopping */
    void *stomp_arg;
} fixture;

static int port_of(const char *addr)
{
    const char *c = strrchr(addr, ':');
    return c ? atoi(c + 1) : 0;
}

static fixture *start(const char *const *kv)
{
    fixture *f = calloc(1, sizeof(*f));
    sl_config c;
    char err[512];
    int fd;

    snprintf(f->dir, sizeof(f->dir), "/tmp/sl-conn-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->logpath, sizeof(f->logpath), "%s.log", f->dir);
    fd = open(f->logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    sl_log_set_fd(fd);
    sl_config_init(&c);
    assert_int_equal(sl_config_set(&c, "data", f->dir, err, sizeof(err)), 0);
    assert_int_equal(
        sl_config_set(&c, "listen", "127.0.0.1:0", err, sizeof(err)), 0);
    assert_int_equal(
        sl_config_set(&c, "stomp-listen", "127.0.0.1:0", err, sizeof(err)), 0);
    assert_int_equal(
        sl_config_set(&c, "http-listen", "127.0.0.1:0", err, sizeof(err)), 0);
    for (; kv && kv[0]; kv += 2)
        assert_int_equal(sl_config_set(&c, kv[0], kv[1], err, sizeof(err)), 0);
    sl_log_level = SL_WARN;
    if (sl_server_start(&c, &f->b, err, sizeof(err)) != SL_OK)
        fail_msg("start: %s", err);
    /* the test protocol replaces STOMP on its listener */
    f->stomp_ops = sl_conn_proto_ops(f->b, SL_LISTENER_STOMP);
    f->stomp_arg = sl_conn_proto_arg(f->b, SL_LISTENER_STOMP, f->stomp_ops);
    sl_conn_set_proto(f->b, SL_LISTENER_STOMP, &t_ops, &f->p);
    f->port = port_of(sl_server_stomp_addr(f->b));
    f->bin_port = port_of(sl_server_binary_addr(f->b));
    return f;
}

static void stop(fixture *f)
{
    char cmd[256];
    sl_conn_set_proto(f->b, SL_LISTENER_STOMP, f->stomp_ops, f->stomp_arg);
    raise(SIGTERM);
    assert_int_equal(sl_server_run(f->b), 0);
    sl_log_set_fd(2);
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", f->dir, f->logpath);
    assert_int_equal(system(cmd), 0);
    free(f);
}

static void spin(fixture *f, int rounds)
{
    for (int i = 0; i < rounds; i++)
        event_base_loop(sl_broker_base(f->b), EVLOOP_NONBLOCK);
}

/* Run the loop until *counter reaches want. */
static void loop_until(fixture *f, const int *counter, int want)
{
    for (int i = 0; i < 200000 && *counter < want; i++)
        event_base_loop(sl_broker_base(f->b), EVLOOP_NONBLOCK);
    assert_true(*counter >= want);
}

static int dial(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void say(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Read what the broker sent until `want` bytes or EOF (the loop runs in
 * between). Returns the bytes read; *eof set at EOF. */
static size_t hear(fixture *f, int fd, char *buf, size_t want, int *eof)
{
    size_t got = 0;
    *eof = 0;
    for (int i = 0; i < 200000 && got < want; i++) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (n > 0)
            got += (size_t)n;
        else
            event_base_loop(sl_broker_base(f->b), EVLOOP_NONBLOCK);
    }
    buf[got] = '\0';
    return got;
}

static int count_lines(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[1024];
    int n = 0;
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, needle))
            n++;
    fclose(fp);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

/* Replies waiting on waits completed in reverse order leave in request
 * order, and only once the first one's wait completed. */
static void test_replies_keep_order(void **state)
{
    fixture *f = start(NULL);
    char buf[64];
    int fd, eof;
    (void)state;
    f->p.mode = WAITED;
    fd = dial(f->port);
    say(fd, "a\nb\nc\n");
    loop_until(f, &f->p.lines, 3);
    sl_wait_release(f->p.waits[2], SL_OK);
    sl_wait_release(f->p.waits[1], SL_OK);
    spin(f, 50);
    assert_int_equal(read(fd, buf, sizeof(buf)), -1); /* nothing yet */
    assert_int_equal(errno, EAGAIN);
    sl_wait_release(f->p.waits[0], SL_OK);
    assert_int_equal(hear(f, fd, buf, 6, &eof), 6);
    assert_string_equal(buf, "a\nb\nc\n");
    close(fd);
    loop_until(f, &f->p.closed, 1);
    assert_int_equal(f->p.hooks, 1); /* EOF ran the close hook once */
    stop(f);
}

static int count_write_ev(const struct event_base *base, const struct event *ev,
                          void *arg)
{
    (void)base;
    if (event_get_events(ev) & EV_WRITE)
        (*(int *)arg)++;
    return 0;
}

/* Write events added to the loop (a socket waiting for EPOLLOUT). */
static int write_events(fixture *f)
{
    int n = 0;
    event_base_foreach_event(sl_broker_base(f->b), count_write_ev, &n);
    return n;
}

/* Output to a connection with nothing queued (a protocol's own write, a
 * reply completed outside a read) is corked and sent in one send() at the
 * end of the loop pass: no write event is armed for it (an epoll_ctl each
 * way and a loop pass, issue 20), and the bytes keep their order with a
 * write too large for the cork after them. */
static void test_idle_output_arms_no_write_event(void **state)
{
    fixture *f = start(NULL);
    static char big[200000], got[200000 + 64];
    char buf[64];
    int fd, eof, w0;
    (void)state;
    f->p.mode = WAITED;
    fd = dial(f->port);
    say(fd, "a\n");
    loop_until(f, &f->p.lines, 1);
    spin(f, 5);
    w0 = write_events(f);
    sl_conn_write(f->p.last, "m1\n", 3);
    sl_wait_release(f->p.waits[0], SL_OK); /* the reply "a" */
    sl_conn_write(f->p.last, "m2\n", 3);
    assert_int_equal(write_events(f), w0);
    assert_int_equal(hear(f, fd, buf, 8, &eof), 8);
    assert_string_equal(buf, "m1\na\nm2\n");
    assert_int_equal(write_events(f), w0);
    /* corked bytes, then more than the socket takes at once */
    memset(big, 'b', sizeof(big));
    sl_conn_write(f->p.last, "m3\n", 3);
    sl_conn_write(f->p.last, big, sizeof(big));
    sl_conn_write(f->p.last, "m4\n", 3);
    assert_int_equal(hear(f, fd, got, sizeof(big) + 6, &eof), sizeof(big) + 6);
    assert_memory_equal(got, "m3\n", 3);
    assert_memory_equal(got + 3, big, sizeof(big));
    assert_memory_equal(got + 3 + sizeof(big), "m4\n", 3);
    close(fd);
    loop_until(f, &f->p.closed, 1);
    stop(f);
}

/* A failed wait lets the protocol rewrite its reply (an error naming the
 * operation), later replies are cancelled and the connection closes. */
static void test_failed_wait_closes(void **state)
{
    fixture *f = start(NULL);
    char buf[256];
    int fd, eof;
    (void)state;
    f->p.mode = WAITED;
    fd = dial(f->port);
    say(fd, "x\ny\n");
    loop_until(f, &f->p.lines, 2);
    sl_wait_release(f->p.waits[1], SL_OK);
    sl_wait_release(f->p.waits[0], SL_ERR_STORAGE);
    hear(f, fd, buf, sizeof(buf) - 1, &eof);
    assert_true(eof);
    assert_non_null(strstr(buf, "ERR "));
    assert_non_null(strstr(buf, "line x x\n"));
    assert_null(strstr(buf, "y")); /* cancelled */
    close(fd);                     /* the broker lingers for this EOF */
    loop_until(f, &f->p.closed, 1);
    stop(f);
}

/* A wait that completes after its connection is gone frees itself. */
static void test_wait_outlives_connection(void **state)
{
    fixture *f = start(NULL);
    int fd;
    (void)state;
    f->p.mode = WAITED;
    fd = dial(f->port);
    say(fd, "a\n");
    loop_until(f, &f->p.lines, 1);
    sl_conn_abort(f->p.last, "test");
    loop_until(f, &f->p.closed, 1);
    sl_wait_release(f->p.waits[0], SL_OK); /* no connection: no flush */
    close(fd);
    stop(f);
}

/* Queued replies count what they allocate, not their payload: replies
 * with no bytes at all still stop reading at output-high-water (64 KiB
 * = about 260 slots of about 250 bytes), well below max-pending-requests
 * (1024), where counting bytes of payload stopped. */
static void test_reply_memory_pauses_reading(void **state)
{
    static const char *const kv[] = {"output-high-water", "64k", NULL};
    fixture *f = start(kv);
    char many[2048];
    int fd;
    (void)state;
    f->p.mode = HOLD;
    fd = dial(f->port);
    for (size_t i = 0; i + 2 <= sizeof(many); i += 2)
        memcpy(many + i, "z\n", 2);
    assert_int_equal(write(fd, many, sizeof(many)), (ssize_t)sizeof(many));
    loop_until(f, &f->p.lines, 1);
    spin(f, 200);
    assert_true(f->p.lines >= 100);
    assert_true(f->p.lines <= 400);
    assert_true(sl_conn_out_high(f->p.last));
    /* EOF would leave it open for the replies it owes: close it */
    sl_conn_abort(f->p.last, "test");
    loop_until(f, &f->p.closed, 1);
    close(fd);
    stop(f);
}

/* One max-connections count for every listener. */
static void test_shared_connection_limit(void **state)
{
    static const char *const kv[] = {"max-connections", "2", NULL};
    fixture *f = start(kv);
    char buf[16];
    int a, b, c, eof;
    (void)state;
    f->p.mode = ECHO;
    a = dial(f->port);
    b = dial(f->port);
    loop_until(f, &f->p.opened, 2);
    c = dial(f->bin_port); /* the binary listener: refused */
    assert_int_equal(hear(f, c, buf, 1, &eof), 0);
    assert_true(eof);
    close(c);
    say(a, "still\n");
    assert_int_equal(hear(f, a, buf, 6, &eof), 6);
    assert_int_equal(count_lines(f->logpath, "max-connections reached"), 1);
    close(a);
    close(b);
    loop_until(f, &f->p.closed, 2);
    stop(f);
}

/* Per-address cap. */
static void test_per_address_limit(void **state)
{
    static const char *const kv[] = {"max-connections-per-address", "1", NULL};
    fixture *f = start(kv);
    char buf[16];
    int a, b, eof;
    (void)state;
    f->p.mode = ECHO;
    a = dial(f->port);
    loop_until(f, &f->p.opened, 1);
    b = dial(f->port);
    assert_int_equal(hear(f, b, buf, 1, &eof), 0);
    assert_true(eof);
    close(b);
    close(a);
    loop_until(f, &f->p.closed, 1);
    b = dial(f->port); /* the address is free again */
    loop_until(f, &f->p.opened, 2);
    close(b);
    loop_until(f, &f->p.closed, 2);
    stop(f);
}

/* A connection that does not finish its handshake is closed; one that
 * did is left alone. */
static void test_handshake_timeout(void **state)
{
    static const char *const kv[] = {"handshake-timeout-ms", "1", NULL};
    fixture *f = start(kv);
    char buf[16];
    int a, eof;
    (void)state;
    f->p.mode = HANDSHAKE;
    a = dial(f->port);
    assert_int_equal(hear(f, a, buf, 1, &eof), 0);
    assert_true(eof);
    loop_until(f, &f->p.closed, 1);
    close(a);
    stop(f);
}

/* sl_conn_warn: one line per kind per 10 s, the rest summed up. */
static void test_warn_rate_limited(void **state)
{
    fixture *f = start(NULL);
    int a;
    (void)state;
    f->p.mode = ECHO;
    a = dial(f->port);
    loop_until(f, &f->p.opened, 1);
    for (int i = 0; i < 1000; i++)
        sl_conn_warn(f->p.last, "kind-a", "bad thing %d", i);
    sl_conn_warn(f->p.last, "kind-b", "other thing");
    assert_int_equal(count_lines(f->logpath, "bad thing"), 1);
    assert_int_equal(count_lines(f->logpath, "other thing"), 1);
    close(a);
    loop_until(f, &f->p.closed, 1);
    assert_int_equal(count_lines(f->logpath, "and 999 more like this"), 1);
    stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies_keep_order),
        cmocka_unit_test(test_failed_wait_closes),
        cmocka_unit_test(test_idle_output_arms_no_write_event),
        cmocka_unit_test(test_wait_outlives_connection),
        cmocka_unit_test(test_reply_memory_pauses_reading),
        cmocka_unit_test(test_shared_connection_limit),
        cmocka_unit_test(test_per_address_limit),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_warn_rate_limited),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
