/*
 * _sluice.c - CPython extension over libsluice (client/include/sluice.h).
 *
 * This module is the thin, low-level layer: one Python type per libsluice
 * handle (Producer, Consumer, QueueConsumer, Admin) plus Message. The
 * Pythonic API (keyword configuration, futures, iteration, asyncio,
 * exceptions) lives in sluice/__init__.py on top of it.
 *
 * The GIL and threads
 *   Every call into libsluice that may block or do I/O runs between
 *   Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS. libsluice serialises
 *   calls on one handle with its own mutex, so several Python threads may
 *   use one object. What libsluice cannot know is the Python object's
 *   lifetime: close() from one thread while another is blocked inside a
 *   call would free the handle under it. So each object counts the calls
 *   in flight (sl_obj_enter/leave); close() marks the object closed (new
 *   calls raise ClosedError), waits without the GIL until the count drops
 *   to zero, and only then frees the handle.
 *
 *   Long waits (poll, flush with a timeout) are cut into slices of at most
 *   SLICE_MS so Ctrl-C (PyErr_CheckSignals) is seen between slices.
 *
 * Delivery reports
 *   libsluice calls the delivery callback on the thread that called
 *   send/poll/flush, without the GIL (it is released around those calls).
 *   The callback only appends the report to a per-producer array under a
 *   plain mutex; after the call returns and the GIL is held again, the
 *   array is drained and each report resolves its Python future (a dict
 *   maps the report's opaque id to the future). No Python code ever runs
 *   without the GIL, and no libsluice lock is held while Python code runs.
 *
 * Errors
 *   A libsluice error becomes an exception built by the factory that
 *   sluice/errors.py registers (_set_error_factory): factory(code, message,
 *   name) -> exception instance. The message is sluice_errstr() (the
 *   thread-local detail naming the topic/address), captured right after
 *   the failing call, or sluice_strerror(code).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

/* Py_BEGIN/END_ALLOW_THREADS spelled as statements (clang-format cannot
 * lay out the bare macros). They still open and close one block. */
#define SL_NOGIL_BEGIN()                                                       \
    Py_BEGIN_ALLOW_THREADS do                                                  \
    {                                                                          \
    }                                                                          \
    while (0)
#define SL_NOGIL_END()                                                         \
    Py_END_ALLOW_THREADS do                                                    \
    {                                                                          \
    }                                                                          \
    while (0)

#define SLICE_MS 200
#define DETAIL_MAX 512

static PyObject *err_factory; /* set by sluice/errors.py */

/* ---- errors ----------------------------------------------------------- */

static PyObject *raise_code(int code, const char *detail)
{
    const char *msg = (detail && detail[0]) ? detail : sluice_strerror(code);
    if (err_factory == NULL) {
        PyErr_Format(PyExc_RuntimeError, "sluice error %d: %s", code, msg);
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(err_factory, "iss", code, msg,
                                          sluice_errname(code));
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* Copy the calling thread's libsluice error detail (call without the GIL
 * right after the failing call). */
static void grab_detail(char *buf)
{
    snprintf(buf, DETAIL_MAX, "%s", sluice_errstr());
}

/* ---- calls in flight and close --------------------------------------- */

typedef struct sl_obj {
    PyObject_HEAD pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight; /* calls currently inside libsluice (under mu) */
    int closed;   /* written with the GIL held */
} sl_obj;

static void sl_obj_init(sl_obj *o)
{
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->inflight = 0;
    o->closed = 0;
}

static void sl_obj_fini(sl_obj *o)
{
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
}

/* With the GIL: 0 and counted, or -1 with ClosedError set. */
static int sl_obj_enter(sl_obj *o, const char *what)
{
    if (o->closed) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s is closed", what);
        raise_code(SLUICE_ERR_CLOSED, buf);
        return -1;
    }
    pthread_mutex_lock(&o->mu);
    o->inflight++;
    pthread_mutex_unlock(&o->mu);
    return 0;
}

/* With the GIL. */
static void sl_obj_leave(sl_obj *o)
{
    pthread_mutex_lock(&o->mu);
    if (--o->inflight == 0)
        pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* With the GIL. Marks o closed; returns 1 if the caller must free the
 * handle now (after this, no call is in flight), 0 if already closed.
 * Waits for calls in flight with the GIL released. */
static int sl_obj_close(sl_obj *o)
{
    if (o->closed)
        return 0;
    o->closed = 1;
    SL_NOGIL_BEGIN();
    pthread_mutex_lock(&o->mu);
    while (o->inflight > 0)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    SL_NOGIL_END();
    return 1;
}

/* ---- configuration ---------------------------------------------------- */

/* dict (str -> str) to a new sluice_conf. NULL with an exception set. */
static sluice_conf *conf_from_dict(PyObject *dict)
{
    sluice_conf *conf = sluice_conf_new();
    if (conf == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (dict == NULL || dict == Py_None)
        return conf;
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "config must be a dict");
        goto fail;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        const char *ks = PyUnicode_AsUTF8(k);
        if (ks == NULL)
            goto fail;
        PyObject *vs = PyObject_Str(v);
        if (vs == NULL)
            goto fail;
        const char *vc = PyUnicode_AsUTF8(vs);
        if (vc == NULL) {
            Py_DECREF(vs);
            goto fail;
        }
        char errstr[DETAIL_MAX] = "";
        sluice_err rc = sluice_conf_set(conf, ks, vc, errstr, sizeof(errstr));
        Py_DECREF(vs);
        if (rc != SLUICE_OK) {
            raise_code(rc, errstr);
            goto fail;
        }
    }
    return conf;
fail:
    sluice_conf_free(conf);
    return NULL;
}

/* ms timeout from a Python argument in ms: None/negative = forever (-1). */
static int parse_timeout(PyObject *arg, int64_t *out)
{
    if (arg == NULL || arg == Py_None) {
        *out = -1;
        return 0;
    }
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v < 0 ? -1 : v;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Next slice of a wait that ends at deadline (-1 = never). */
static int slice_ms(int64_t deadline)
{
    if (deadline < 0)
        return SLICE_MS;
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return 0;
    return left < SLICE_MS ? (int)left : SLICE_MS;
}

/* ---- handles: the libsluice object behind each Python object ----------
 * Producer, Consumer, QueueConsumer and Admin each own one libsluice handle
 * (a field of their object, passed here as void **slot). Creating it and
 * freeing it block (connections), so both run without the GIL; close() and
 * dealloc follow the same rules for every type. */

typedef void (*sl_handle_free_fn)(void *h);
typedef sluice_err (*sl_handle_new_fn)(sluice_conf *conf, void *arg, void **out,
                                       char *err, size_t n);

/* tp_new of the types whose object needs nothing beyond sl_obj set up. */
static PyObject *sl_obj_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *self = type->tp_alloc(type, 0);
    if (self != NULL)
        sl_obj_init((sl_obj *)self);
    return self;
}

/* Creates the handle into *slot from the config dict cfg (may be NULL).
 * prep (may be NULL) adds to the config (callbacks). 0, or -1 with an
 * exception set. */
static int sl_handle_init(void **slot, const char *what, PyObject *cfg,
                          void (*prep)(sluice_conf *conf, void *arg),
                          sl_handle_new_fn make, void *arg)
{
    if (*slot != NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s already initialised", what);
        return -1;
    }
    sluice_conf *conf = conf_from_dict(cfg);
    if (conf == NULL)
        return -1;
    if (prep != NULL)
        prep(conf, arg);
    char errstr[DETAIL_MAX] = "";
    void *h = NULL;
    sluice_err rc;
    SL_NOGIL_BEGIN();
    rc = make(conf, arg, &h, errstr, sizeof(errstr));
    SL_NOGIL_END();
    sluice_conf_free(conf);
    if (rc != SLUICE_OK) {
        raise_code(rc, errstr);
        return -1;
    }
    *slot = h;
    return 0;
}

/* Frees *slot (if any) without the GIL and leaves it NULL. */
static void sl_handle_free(void **slot, sl_handle_free_fn fn)
{
    void *h = *slot;
    *slot = NULL;
    if (h != NULL) {
        SL_NOGIL_BEGIN();
        fn(h);
        SL_NOGIL_END();
    }
}

/* close(): 1 when this call closed it (the handle is freed now). */
static int sl_handle_close(sl_obj *o, void **slot, sl_handle_free_fn fn)
{
    if (!sl_obj_close(o))
        return 0;
    sl_handle_free(slot, fn);
    return 1;
}

/* The first part of every dealloc: no call can be in flight (we hold the
 * last reference), so the handle is freed without waiting. */
static void sl_handle_dealloc(sl_obj *o, void **slot, sl_handle_free_fn fn)
{
    if (!o->closed) {
        o->closed = 1;
        sl_handle_free(slot, fn);
    }
}

/* ---- Message ---------------------------------------------------------- */

typedef struct QueueConsumerObject QueueConsumerObject;

typedef struct {
    PyObject_HEAD PyObject *topic;
    PyObject *key;     /* bytes or None */
    PyObject *value;   /* bytes or None */
    PyObject *headers; /* list of (str, bytes|None) */
    int partition;
    long long offset;
    long long timestamp;
    long long lock_deadline;
    unsigned int attempts;
    unsigned int failures;
    PyObject *owner; /* QueueConsumerObject or NULL (stream message) */
    int settled;
} MessageObject;

static PyTypeObject MessageType;

static PyObject *bytes_or_none(const void *p, size_t len)
{
    if (p == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)len);
}

/* Topic names repeat: keep the last one per consumer. New reference. */
static PyObject *topic_obj(PyObject **cache, const char *topic)
{
    if (*cache != NULL) {
        const char *c = PyUnicode_AsUTF8(*cache);
        if (c != NULL && strcmp(c, topic) == 0) {
            Py_INCREF(*cache);
            return *cache;
        }
    }
    PyObject *t = PyUnicode_DecodeUTF8(topic, (Py_ssize_t)strlen(topic),
                                       "surrogateescape");
    if (t == NULL)
        return NULL;
    Py_XSETREF(*cache, t);
    Py_INCREF(t);
    return t;
}

/* Build a Message from m (not freed here). owner may be NULL. */
static PyObject *message_new(const sluice_message *m, PyObject *owner,
                             PyObject **topic_cache)
{
    MessageObject *o = PyObject_GC_New(MessageObject, &MessageType);
    if (o == NULL)
        return NULL;
    o->topic = o->key = o->value = o->headers = o->owner = NULL;
    o->partition = m->partition;
    o->offset = m->offset;
    o->timestamp = m->timestamp;
    o->lock_deadline = m->lock_deadline;
    o->attempts = m->attempts;
    o->failures = m->failures;
    o->settled = 0;
    o->topic = topic_obj(topic_cache, m->topic);
    if (o->topic == NULL)
        goto fail;
    o->key = bytes_or_none(m->key, m->key_len);
    if (o->key == NULL)
        goto fail;
    o->value = bytes_or_none(m->value, m->value_len);
    if (o->value == NULL)
        goto fail;
    o->headers = PyList_New((Py_ssize_t)m->header_count);
    if (o->headers == NULL)
        goto fail;
    for (size_t i = 0; i < m->header_count; i++) {
        const sluice_header *h = &m->headers[i];
        PyObject *k = PyUnicode_DecodeUTF8(h->key, (Py_ssize_t)h->key_len,
                                           "surrogateescape");
        if (k == NULL)
            goto fail;
        PyObject *v = bytes_or_none(h->value, h->value_len);
        if (v == NULL) {
            Py_DECREF(k);
            goto fail;
        }
        PyObject *t = PyTuple_Pack(2, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (t == NULL)
            goto fail;
        PyList_SET_ITEM(o->headers, (Py_ssize_t)i, t);
    }
    Py_XINCREF(owner);
    o->owner = owner;
    PyObject_GC_Track(o);
    return (PyObject *)o;
fail:
    Py_XDECREF(o->topic);
    Py_XDECREF(o->key);
    Py_XDECREF(o->value);
    Py_XDECREF(o->headers);
    PyObject_GC_Del(o);
    return NULL;
}

static int message_traverse(MessageObject *o, visitproc visit, void *arg)
{
    Py_VISIT(o->headers);
    Py_VISIT(o->owner);
    return 0;
}

static int message_clear(MessageObject *o)
{
    Py_CLEAR(o->topic);
    Py_CLEAR(o->key);
    Py_CLEAR(o->value);
    Py_CLEAR(o->headers);
    Py_CLEAR(o->owner);
    return 0;
}

static void message_dealloc(MessageObject *o)
{
    PyObject_GC_UnTrack(o);
    message_clear(o);
    PyObject_GC_Del(o);
}

static PyObject *message_repr(MessageObject *o)
{
    PyObject *v = o->value;
    PyObject *shown = NULL, *r = NULL;
    if (PyBytes_Check(v) && PyBytes_GET_SIZE(v) > 40) {
        shown = PyBytes_FromStringAndSize(PyBytes_AS_STRING(v), 40);
        if (shown == NULL)
            return NULL;
        PyObject *rep = PyObject_Repr(shown);
        Py_DECREF(shown);
        if (rep == NULL)
            return NULL;
        r = PyUnicode_FromFormat(
            "<sluice.Message topic=%R partition=%d offset=%lld key=%R "
            "value=%U... (%zd bytes)>",
            o->topic, o->partition, o->offset, o->key, rep,
            PyBytes_GET_SIZE(v));
        Py_DECREF(rep);
        return r;
    }
    return PyUnicode_FromFormat(
        "<sluice.Message topic=%R partition=%d offset=%lld key=%R "
        "value=%R>",
        o->topic, o->partition, o->offset, o->key, v);
}

static PyObject *qc_settle(QueueConsumerObject *qc, MessageObject *m, int op,
                           int64_t delay_ms, const char *reason);
static PyObject *qc_touch_one(QueueConsumerObject *qc, MessageObject *m,
                              int64_t lock_ms);

enum { OP_ACK, OP_NACK, OP_REJECT };

static int message_check_queue(MessageObject *o, const char *what)
{
    if (o->owner == NULL) {
        char buf[160];
        snprintf(buf, sizeof(buf),
                 "%s() is for messages of a QueueConsumer; stream consumers "
                 "commit offsets instead",
                 what);
        raise_code(SLUICE_ERR_INVALID_ARG, buf);
        return -1;
    }
    if (o->settled) {
        char buf[200];
        snprintf(buf, sizeof(buf),
                 "%s(): message %s/%d/%lld was already settled "
                 "(acked, nacked or rejected)",
                 what, PyUnicode_AsUTF8(o->topic), o->partition, o->offset);
        raise_code(SLUICE_ERR_INVALID_ARG, buf);
        return -1;
    }
    return 0;
}

static PyObject *message_ack(MessageObject *o, PyObject *unused)
{
    if (message_check_queue(o, "ack") < 0)
        return NULL;
    return qc_settle((QueueConsumerObject *)o->owner, o, OP_ACK, 0, NULL);
}

/* delay in seconds (float) or None = the group's backoff policy. */
static PyObject *message_nack(MessageObject *o, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"delay", NULL};
    PyObject *delay = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:nack", kwlist, &delay))
        return NULL;
    int64_t ms = -1;
    if (delay != Py_None) {
        double d = PyFloat_AsDouble(delay);
        if (d == -1.0 && PyErr_Occurred())
            return NULL;
        if (d < 0) {
            raise_code(SLUICE_ERR_INVALID_ARG,
                       "nack(delay): delay must be >= 0 seconds or None");
            return NULL;
        }
        ms = (int64_t)(d * 1000.0 + 0.5);
    }
    if (message_check_queue(o, "nack") < 0)
        return NULL;
    return qc_settle((QueueConsumerObject *)o->owner, o, OP_NACK, ms, NULL);
}

static PyObject *message_reject(MessageObject *o, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"reason", NULL};
    const char *reason = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z:reject", kwlist, &reason))
        return NULL;
    if (message_check_queue(o, "reject") < 0)
        return NULL;
    return qc_settle((QueueConsumerObject *)o->owner, o, OP_REJECT, 0, reason);
}

/* lock in seconds (float) or None = the group default; returns the new
 * lock deadline (ms since the epoch). */
static PyObject *message_touch(MessageObject *o, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"lock", NULL};
    PyObject *lock = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:touch", kwlist, &lock))
        return NULL;
    int64_t ms = 0;
    if (lock != Py_None) {
        double d = PyFloat_AsDouble(lock);
        if (d == -1.0 && PyErr_Occurred())
            return NULL;
        if (d <= 0) {
            raise_code(SLUICE_ERR_INVALID_ARG,
                       "touch(lock): lock must be > 0 seconds or None");
            return NULL;
        }
        ms = (int64_t)(d * 1000.0 + 0.5);
    }
    if (message_check_queue(o, "touch") < 0)
        return NULL;
    return qc_touch_one((QueueConsumerObject *)o->owner, o, ms);
}

static PyObject *message_header(MessageObject *o, PyObject *name)
{
    Py_ssize_t n = PyList_GET_SIZE(o->headers);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(o->headers, i);
        int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(t, 0), name, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq) {
            PyObject *v = PyTuple_GET_ITEM(t, 1);
            Py_INCREF(v);
            return v;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef message_methods[] = {
    {"ack", (PyCFunction)message_ack, METH_NOARGS,
     "ack()\n\nThe message is done and is never delivered again. Queued "
     "and sent with the next batch of acks (see QueueConsumer.flush)."},
    {"nack", (PyCFunction)(void (*)(void))message_nack,
     METH_VARARGS | METH_KEYWORDS,
     "nack(delay=None)\n\nRelease the message: it becomes available again "
     "after `delay` seconds (None: the group's backoff policy). Counts a "
     "failure."},
    {"reject", (PyCFunction)(void (*)(void))message_reject,
     METH_VARARGS | METH_KEYWORDS,
     "reject(reason=None)\n\nSend the message straight to the dead-letter "
     "topic with `reason` (default \"rejected\"). Counts a failure."},
    {"touch", (PyCFunction)(void (*)(void))message_touch,
     METH_VARARGS | METH_KEYWORDS,
     "touch(lock=None) -> int\n\nExtend the lock on the message to now + "
     "`lock` seconds (None: the group's lock time), synchronously. Returns "
     "the new lock deadline in ms since the epoch, or 0 with lock=None "
     "(the group's lock time is not known to the client)."},
    {"header", (PyCFunction)message_header, METH_O,
     "header(name) -> bytes | None\n\nValue of the first header `name`, "
     "or None."},
    {NULL, NULL, 0, NULL}};

static PyMemberDef message_members[] = {
    {"topic", T_OBJECT, offsetof(MessageObject, topic), READONLY,
     "Topic name (str)."},
    {"key", T_OBJECT, offsetof(MessageObject, key), READONLY,
     "Key (bytes) or None."},
    {"value", T_OBJECT, offsetof(MessageObject, value), READONLY,
     "Value (bytes) or None (a tombstone)."},
    {"headers", T_OBJECT, offsetof(MessageObject, headers), READONLY,
     "Headers: list of (name: str, value: bytes | None), in order."},
    {"partition", T_INT, offsetof(MessageObject, partition), READONLY,
     "Partition number."},
    {"offset", T_LONGLONG, offsetof(MessageObject, offset), READONLY,
     "Offset in the partition."},
    {"timestamp", T_LONGLONG, offsetof(MessageObject, timestamp), READONLY,
     "Producer timestamp, ms since the epoch."},
    {"attempts", T_UINT, offsetof(MessageObject, attempts), READONLY,
     "Queue messages: deliveries so far, this one included (0 for stream "
     "messages)."},
    {"failures", T_UINT, offsetof(MessageObject, failures), READONLY,
     "Queue messages: nacks, rejects and lock expiries so far."},
    {"lock_deadline", T_LONGLONG, offsetof(MessageObject, lock_deadline),
     READONLY,
     "Queue messages: lock deadline, ms since the epoch (0 if "
     "unknown)."},
    {"settled", T_INT, offsetof(MessageObject, settled), READONLY,
     "True once ack(), nack() or reject() was called."},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sluice.Message",
    .tp_basicsize = sizeof(MessageObject),
    .tp_dealloc = (destructor)message_dealloc,
    .tp_repr = (reprfunc)message_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A received record. Created by consumers, not by users.",
    .tp_traverse = (traverseproc)message_traverse,
    .tp_clear = (inquiry)message_clear,
    .tp_methods = message_methods,
    .tp_members = message_members,
};

/* ---- Producer ---------------------------------------------------------- */

typedef struct {
    uint64_t id;
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    int err;
} report;

typedef struct {
    sl_obj b;
    sluice_producer *p;
    PyObject *futures; /* dict: id (int) -> future */
    uint64_t next_id;
    pthread_mutex_t rep_mu; /* guards reps: appended without the GIL */
    report *reps;
    size_t nrep, caprep;
    size_t lost; /* reports dropped for lack of memory */
} ProducerObject;

/* Called by libsluice without the GIL; must not touch Python. */
static void delivery_cb(const sluice_delivery *d, void *opaque)
{
    ProducerObject *self = opaque;
    uint64_t id = (uint64_t)(uintptr_t)d->opaque;
    if (id == 0)
        return; /* sent without a future */
    pthread_mutex_lock(&self->rep_mu);
    if (self->nrep == self->caprep) {
        size_t cap = self->caprep ? self->caprep * 2 : 256;
        report *n = realloc(self->reps, cap * sizeof(*n));
        if (n == NULL) {
            self->lost++;
            pthread_mutex_unlock(&self->rep_mu);
            return;
        }
        self->reps = n;
        self->caprep = cap;
    }
    report *r = &self->reps[self->nrep++];
    r->id = id;
    r->partition = d->partition;
    r->offset = d->offset;
    r->timestamp = d->timestamp;
    r->err = (int)d->err;
    pthread_mutex_unlock(&self->rep_mu);
}

/* With the GIL: resolve the futures of every report collected so far.
 * -1 with an exception set if resolving raised (the rest stay queued). */
static int producer_drain(ProducerObject *self)
{
    for (;;) {
        pthread_mutex_lock(&self->rep_mu);
        report *reps = self->reps;
        size_t n = self->nrep;
        if (n == 0) {
            pthread_mutex_unlock(&self->rep_mu);
            return 0;
        }
        self->reps = NULL;
        self->nrep = self->caprep = 0;
        pthread_mutex_unlock(&self->rep_mu);

        int rc = 0;
        for (size_t i = 0; i < n; i++) {
            report *r = &reps[i];
            PyObject *key = PyLong_FromUnsignedLongLong(r->id);
            if (key == NULL) {
                rc = -1;
                break;
            }
            PyObject *fut = PyDict_GetItemWithError(self->futures, key);
            if (fut == NULL) {
                Py_DECREF(key);
                if (PyErr_Occurred()) {
                    rc = -1;
                    break;
                }
                continue;
            }
            Py_INCREF(fut);
            if (PyDict_DelItem(self->futures, key) < 0) {
                Py_DECREF(key);
                Py_DECREF(fut);
                rc = -1;
                break;
            }
            Py_DECREF(key);
            PyObject *res = PyObject_CallMethod(
                fut, "_resolve", "iLLi", (int)r->partition,
                (long long)r->offset, (long long)r->timestamp, r->err);
            Py_DECREF(fut);
            if (res == NULL) {
                /* _resolve guards user callbacks; this is a bug: report
                 * it without losing the other reports. */
                PyErr_WriteUnraisable(fut);
                continue;
            }
            Py_DECREF(res);
        }
        free(reps);
        if (rc < 0)
            return -1;
    }
}

static void producer_prep(sluice_conf *conf, void *self)
{
    sluice_conf_set_delivery_cb(conf, delivery_cb, self);
}

static sluice_err producer_make(sluice_conf *conf, void *arg, void **out,
                                char *err, size_t n)
{
    (void)arg;
    return sluice_producer_new(conf, (sluice_producer **)out, err, n);
}

static void producer_destroy(void *h)
{
    sluice_producer_free(h);
}

static int producer_init(ProducerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"config", NULL};
    PyObject *cfg = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Producer", kwlist, &cfg))
        return -1;
    return sl_handle_init((void **)&self->p, "Producer", cfg, producer_prep,
                          producer_make, self);
}

static PyObject *producer_tp_new(PyTypeObject *type, PyObject *args,
                                 PyObject *kw)
{
    ProducerObject *self = (ProducerObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    sl_obj_init(&self->b);
    pthread_mutex_init(&self->rep_mu, NULL);
    self->futures = PyDict_New();
    if (self->futures == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->next_id = 1;
    return (PyObject *)self;
}

/* Fail every future still waiting (after the handle is gone). */
static void producer_fail_pending(ProducerObject *self)
{
    if (self->futures == NULL || PyDict_GET_SIZE(self->futures) == 0)
        return;
    PyObject *items = PyDict_Values(self->futures);
    PyDict_Clear(self->futures);
    if (items == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *fut = PyList_GET_ITEM(items, i);
        PyObject *res =
            PyObject_CallMethod(fut, "_resolve", "iLLi", -1, (long long)-1,
                                (long long)0, (int)SLUICE_ERR_CLOSED);
        if (res == NULL)
            PyErr_WriteUnraisable(fut);
        Py_XDECREF(res);
    }
    Py_DECREF(items);
}

static PyObject *producer_close(ProducerObject *self, PyObject *unused)
{
    if (sl_handle_close(&self->b, (void **)&self->p, producer_destroy)) {
        if (producer_drain(self) < 0)
            return NULL;
        producer_fail_pending(self);
    }
    Py_RETURN_NONE;
}

static int producer_traverse(ProducerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->futures);
    return 0;
}

static void producer_dealloc(ProducerObject *self)
{
    PyObject_GC_UnTrack(self);
    sl_handle_dealloc(&self->b, (void **)&self->p, producer_destroy);
    Py_CLEAR(self->futures);
    free(self->reps);
    pthread_mutex_destroy(&self->rep_mu);
    sl_obj_fini(&self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int producer_clear(ProducerObject *self)
{
    Py_CLEAR(self->futures);
    return 0;
}

/* headers: None, or a sequence of (name, value) pairs (a dict's items()
 * are accepted by the Python layer). name: str or bytes; value: bytes-like,
 * str or None. Fills *out (PyMem) and *keep (references keeping the
 * buffers alive). */
typedef struct {
    sluice_header *h;
    size_t n;
    PyObject *keep; /* list */
    Py_buffer *bufs;
    size_t nbufs;
} hdrs;

static void hdrs_free(hdrs *x)
{
    for (size_t i = 0; i < x->nbufs; i++)
        PyBuffer_Release(&x->bufs[i]);
    PyMem_Free(x->bufs);
    PyMem_Free(x->h);
    Py_XDECREF(x->keep);
    memset(x, 0, sizeof(*x));
}

static int hdrs_from(PyObject *obj, hdrs *x)
{
    memset(x, 0, sizeof(*x));
    if (obj == NULL || obj == Py_None)
        return 0;
    PyObject *seq = PySequence_Fast(obj, "headers must be a list of "
                                         "(name, value) pairs or a dict");
    if (seq == NULL)
        return -1;
    x->keep = PyList_New(0);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    x->h = PyMem_Calloc((size_t)n + 1, sizeof(*x->h));
    x->bufs = PyMem_Calloc((size_t)n + 1, sizeof(*x->bufs));
    if (x->keep == NULL || x->h == NULL || x->bufs == NULL) {
        Py_DECREF(seq);
        hdrs_free(x);
        PyErr_NoMemory();
        return -1;
    }
    if (PyList_Append(x->keep, seq) < 0)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "headers[%zd] must be a (name, value) tuple", i);
            goto fail;
        }
        PyObject *k = PyTuple_GET_ITEM(pair, 0);
        PyObject *v = PyTuple_GET_ITEM(pair, 1);
        if (PyList_Append(x->keep, pair) < 0)
            goto fail;
        if (PyUnicode_Check(k)) {
            Py_ssize_t kl;
            const char *ks = PyUnicode_AsUTF8AndSize(k, &kl);
            if (ks == NULL)
                goto fail;
            x->h[i].key = ks;
            x->h[i].key_len = (size_t)kl;
        } else if (PyBytes_Check(k)) {
            x->h[i].key = PyBytes_AS_STRING(k);
            x->h[i].key_len = (size_t)PyBytes_GET_SIZE(k);
        } else {
            PyErr_Format(PyExc_TypeError,
                         "headers[%zd]: name must be str or bytes, not %s", i,
                         Py_TYPE(k)->tp_name);
            goto fail;
        }
        if (v == Py_None) {
            x->h[i].value = NULL;
            x->h[i].value_len = 0;
        } else if (PyUnicode_Check(v)) {
            Py_ssize_t vl;
            const char *vs = PyUnicode_AsUTF8AndSize(v, &vl);
            if (vs == NULL)
                goto fail;
            x->h[i].value = vs;
            x->h[i].value_len = (size_t)vl;
        } else {
            if (PyObject_GetBuffer(v, &x->bufs[x->nbufs], PyBUF_SIMPLE) < 0) {
                PyErr_Format(PyExc_TypeError,
                             "headers[%zd]: value must be bytes, str or "
                             "None, not %s",
                             i, Py_TYPE(v)->tp_name);
                goto fail;
            }
            Py_buffer *b = &x->bufs[x->nbufs++];
            x->h[i].value = b->buf ? b->buf : "";
            x->h[i].value_len = (size_t)b->len;
        }
        x->n++;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    hdrs_free(x);
    return -1;
}

/* send(topic, value, key=None, headers=None, partition=-1, timestamp=0,
 *      future=None) */
static PyObject *producer_send(ProducerObject *self, PyObject *args,
                               PyObject *kw)
{
    static char *kwlist[] = {"topic",     "value",     "key",    "headers",
                             "partition", "timestamp", "future", NULL};
    const char *topic;
    Py_buffer value = {0}, key = {0};
    PyObject *headers = Py_None, *future = Py_None;
    int partition = SLUICE_PARTITION_ANY;
    long long timestamp = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sz*|z*OiLO:send", kwlist,
                                     &topic, &value, &key, &headers, &partition,
                                     &timestamp, &future))
        return NULL;
    PyObject *ret = NULL, *idkey = NULL;
    hdrs h;
    if (hdrs_from(headers, &h) < 0)
        goto out_nohdrs;
    uint64_t id = 0;
    if (sl_obj_enter(&self->b, "Producer") < 0)
        goto out;
    if (future != Py_None) {
        id = self->next_id++;
        idkey = PyLong_FromUnsignedLongLong(id);
        if (idkey == NULL || PyDict_SetItem(self->futures, idkey, future) < 0) {
            sl_obj_leave(&self->b);
            goto out;
        }
    }
    char detail[DETAIL_MAX] = "";
    sluice_err rc;
    SL_NOGIL_BEGIN();
    rc = sluice_producer_send(self->p, topic, partition, key.buf,
                              key.buf ? (size_t)key.len : 0,
                              value.buf ? value.buf : (value.obj ? "" : NULL),
                              value.buf ? (size_t)value.len : 0, h.h, h.n,
                              timestamp, (void *)(uintptr_t)id);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    if (rc != SLUICE_OK) {
        if (idkey != NULL)
            PyDict_DelItem(self->futures, idkey);
        raise_code(rc, detail);
        goto out;
    }
    if (producer_drain(self) < 0)
        goto out;
    ret = Py_None;
    Py_INCREF(ret);
out:
    hdrs_free(&h);
out_nohdrs:
    Py_XDECREF(idkey);
    if (value.obj)
        PyBuffer_Release(&value);
    if (key.obj)
        PyBuffer_Release(&key);
    return ret;
}

/* poll(timeout_ms=0) -> int: reports delivered. */
static PyObject *producer_poll(ProducerObject *self, PyObject *args)
{
    PyObject *targ = NULL;
    if (!PyArg_ParseTuple(args, "|O:poll", &targ))
        return NULL;
    int64_t t;
    if (targ == NULL)
        t = 0;
    else if (parse_timeout(targ, &t) < 0)
        return NULL;
    int64_t deadline = t < 0 ? -1 : now_ms() + t;
    long total = 0;
    for (;;) {
        if (sl_obj_enter(&self->b, "Producer") < 0)
            return NULL;
        int n, s = slice_ms(deadline);
        SL_NOGIL_BEGIN();
        n = sluice_producer_poll(self->p, s);
        SL_NOGIL_END();
        sl_obj_leave(&self->b);
        if (producer_drain(self) < 0)
            return NULL;
        if (n > 0)
            total += n;
        if (total > 0 || s == 0)
            break;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    return PyLong_FromLong(total);
}

/* flush(timeout_ms=None) -> bool: True when nothing is outstanding. */
static PyObject *producer_flush(ProducerObject *self, PyObject *args)
{
    PyObject *targ = NULL;
    if (!PyArg_ParseTuple(args, "|O:flush", &targ))
        return NULL;
    int64_t t;
    if (parse_timeout(targ, &t) < 0)
        return NULL;
    int64_t deadline = t < 0 ? -1 : now_ms() + t;
    for (;;) {
        if (sl_obj_enter(&self->b, "Producer") < 0)
            return NULL;
        int s = slice_ms(deadline);
        sluice_err rc;
        char detail[DETAIL_MAX] = "";
        SL_NOGIL_BEGIN();
        rc = sluice_producer_flush(self->p, s);
        if (rc != SLUICE_OK && rc != SLUICE_ERR_TIMEOUT)
            grab_detail(detail);
        SL_NOGIL_END();
        sl_obj_leave(&self->b);
        if (producer_drain(self) < 0)
            return NULL;
        if (rc == SLUICE_OK)
            Py_RETURN_TRUE;
        if (rc != SLUICE_ERR_TIMEOUT)
            return raise_code(rc, detail);
        if (s == 0)
            Py_RETURN_FALSE;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
}

static PyObject *producer_outstanding(ProducerObject *self, PyObject *unused)
{
    if (sl_obj_enter(&self->b, "Producer") < 0)
        return NULL;
    size_t n;
    SL_NOGIL_BEGIN();
    n = sluice_producer_outstanding(self->p);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    return PyLong_FromSize_t(n);
}

static PyObject *producer_partitions(ProducerObject *self, PyObject *args)
{
    const char *topic;
    if (!PyArg_ParseTuple(args, "s:partitions", &topic))
        return NULL;
    if (sl_obj_enter(&self->b, "Producer") < 0)
        return NULL;
    int32_t count = 0;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    SL_NOGIL_BEGIN();
    rc = sluice_producer_partitions(self->p, topic, &count);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    return PyLong_FromLong(count);
}

static PyObject *producer_pending_futures(ProducerObject *self,
                                          PyObject *unused)
{
    return PyLong_FromSsize_t(PyDict_GET_SIZE(self->futures));
}

static PyObject *obj_closed_get(sl_obj *o, void *unused)
{
    return PyBool_FromLong(o->closed);
}

static PyGetSetDef obj_getset[] = {
    {"closed", (getter)obj_closed_get, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMethodDef producer_methods[] = {
    {"send", (PyCFunction)(void (*)(void))producer_send,
     METH_VARARGS | METH_KEYWORDS,
     "send(topic, value, key=None, headers=None, partition=-1, "
     "timestamp=0, future=None)"},
    {"poll", (PyCFunction)producer_poll, METH_VARARGS,
     "poll(timeout_ms=0) -> int"},
    {"flush", (PyCFunction)producer_flush, METH_VARARGS,
     "flush(timeout_ms=None) -> bool"},
    {"outstanding", (PyCFunction)producer_outstanding, METH_NOARGS,
     "outstanding() -> int"},
    {"partitions", (PyCFunction)producer_partitions, METH_VARARGS,
     "partitions(topic) -> int"},
    {"pending_futures", (PyCFunction)producer_pending_futures, METH_NOARGS,
     "pending_futures() -> int"},
    {"close", (PyCFunction)producer_close, METH_NOARGS, "close()"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ProducerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sluice._sluice.Producer",
    .tp_basicsize = sizeof(ProducerObject),
    .tp_dealloc = (destructor)producer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Low-level producer handle; use sluice.Producer.",
    .tp_traverse = (traverseproc)producer_traverse,
    .tp_clear = (inquiry)producer_clear,
    .tp_methods = producer_methods,
    .tp_getset = obj_getset,
    .tp_init = (initproc)producer_init,
    .tp_new = producer_tp_new,
};

/* ---- stream Consumer -------------------------------------------------- */

typedef struct {
    sl_obj b;
    sluice_consumer *c;
    PyObject *topic_cache;
} ConsumerObject;

static sluice_err consumer_make(sluice_conf *conf, void *arg, void **out,
                                char *err, size_t n)
{
    (void)arg;
    return sluice_consumer_new(conf, (sluice_consumer **)out, err, n);
}

static int consumer_init(ConsumerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"config", NULL};
    PyObject *cfg = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Consumer", kwlist, &cfg))
        return -1;
    return sl_handle_init((void **)&self->c, "Consumer", cfg, NULL,
                          consumer_make, NULL);
}

static void consumer_destroy(void *h)
{
    sluice_consumer_free(h);
}

static PyObject *consumer_close(ConsumerObject *self, PyObject *unused)
{
    sl_handle_close(&self->b, (void **)&self->c, consumer_destroy);
    Py_RETURN_NONE;
}

static void consumer_dealloc(ConsumerObject *self)
{
    sl_handle_dealloc(&self->b, (void **)&self->c, consumer_destroy);
    Py_CLEAR(self->topic_cache);
    sl_obj_fini(&self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Helpers running one libsluice call with the GIL released. */
#define CALL(obj, what, expr)                                                  \
    do {                                                                       \
        if (sl_obj_enter(&(obj)->b, what) < 0)                                 \
            return NULL;                                                       \
        SL_NOGIL_BEGIN();                                                      \
        rc = (expr);                                                           \
        if (rc != SLUICE_OK)                                                   \
            grab_detail(detail);                                               \
        SL_NOGIL_END();                                                        \
        sl_obj_leave(&(obj)->b);                                               \
    } while (0)

/* list of (topic, partition, offset) -> array (topics borrowed from the
 * list, which the caller keeps alive). */
static sluice_topic_partition *tps_from(PyObject *list, size_t *count,
                                        PyObject **keep)
{
    PyObject *seq = PySequence_Fast(
        list, "expected a list of (topic, partition, offset) tuples");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    sluice_topic_partition *tps = PyMem_Calloc((size_t)n + 1, sizeof(*tps));
    if (tps == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        const char *topic;
        int part;
        long long off;
        if (!PyTuple_Check(t) ||
            !PyArg_ParseTuple(t, "siL", &topic, &part, &off)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError,
                             "item %zd: expected a (topic, partition, "
                             "offset) tuple",
                             i);
            PyMem_Free(tps);
            Py_DECREF(seq);
            return NULL;
        }
        tps[i].topic = topic;
        tps[i].partition = part;
        tps[i].offset = off;
    }
    *count = (size_t)n;
    *keep = seq;
    return tps;
}

static PyObject *tps_to_list(const sluice_topic_partition *tps, size_t n)
{
    PyObject *l = PyList_New((Py_ssize_t)n);
    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *t =
            Py_BuildValue("(siL)", tps[i].topic, (int)tps[i].partition,
                          (long long)tps[i].offset);
        if (t == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    return l;
}

static PyObject *consumer_assign(ConsumerObject *self, PyObject *args)
{
    PyObject *list, *keep = NULL;
    if (!PyArg_ParseTuple(args, "O:assign", &list))
        return NULL;
    size_t n = 0;
    sluice_topic_partition *tps = tps_from(list, &n, &keep);
    if (tps == NULL)
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    if (sl_obj_enter(&self->b, "Consumer") < 0) {
        PyMem_Free(tps);
        Py_DECREF(keep);
        return NULL;
    }
    SL_NOGIL_BEGIN();
    rc = sluice_consumer_assign(self->c, tps, n);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    PyMem_Free(tps);
    Py_DECREF(keep);
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *consumer_assign_topic(ConsumerObject *self, PyObject *args)
{
    const char *topic;
    long long off;
    if (!PyArg_ParseTuple(args, "sL:assign_topic", &topic, &off))
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer", sluice_consumer_assign_topic(self->c, topic, off));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *consumer_subscribe(ConsumerObject *self, PyObject *args)
{
    PyObject *list;
    if (!PyArg_ParseTuple(args, "O:subscribe", &list))
        return NULL;
    PyObject *seq = PySequence_Fast(list, "topics must be a list of str");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **names = PyMem_Calloc((size_t)n + 1, sizeof(*names));
    if (names == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (names[i] == NULL) {
            PyMem_Free(names);
            Py_DECREF(seq);
            return NULL;
        }
    }
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    if (sl_obj_enter(&self->b, "Consumer") < 0) {
        PyMem_Free(names);
        Py_DECREF(seq);
        return NULL;
    }
    SL_NOGIL_BEGIN();
    rc = sluice_consumer_subscribe(self->c, names, (size_t)n);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    PyMem_Free(names);
    Py_DECREF(seq);
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *consumer_assignment(ConsumerObject *self, PyObject *unused)
{
    sluice_topic_partition *tps = NULL;
    size_t n = 0;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer", sluice_consumer_assignment(self->c, &tps, &n));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    PyObject *l = tps_to_list(tps, n);
    sluice_topic_partitions_free(tps, n);
    return l;
}

static PyObject *consumer_seek(ConsumerObject *self, PyObject *args)
{
    const char *topic;
    int part;
    long long off;
    if (!PyArg_ParseTuple(args, "siL:seek", &topic, &part, &off))
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer", sluice_consumer_seek(self->c, topic, part, off));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *consumer_seek_time(ConsumerObject *self, PyObject *args)
{
    const char *topic;
    int part;
    long long ts;
    if (!PyArg_ParseTuple(args, "siL:seek_time", &topic, &part, &ts))
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer", sluice_consumer_seek_time(self->c, topic, part, ts));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *consumer_offset_for_time(ConsumerObject *self, PyObject *args)
{
    const char *topic;
    int part;
    long long ts;
    if (!PyArg_ParseTuple(args, "siL:offset_for_time", &topic, &part, &ts))
        return NULL;
    int64_t off = -1;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer",
         sluice_consumer_offset_for_time(self->c, topic, part, ts, &off));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    return PyLong_FromLongLong(off);
}

static PyObject *consumer_watermarks(ConsumerObject *self, PyObject *args)
{
    const char *topic;
    int part;
    if (!PyArg_ParseTuple(args, "si:watermarks", &topic, &part))
        return NULL;
    int64_t lo = -1, hi = -1;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer",
         sluice_consumer_watermarks(self->c, topic, part, &lo, &hi));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    return Py_BuildValue("(LL)", (long long)lo, (long long)hi);
}

static PyObject *consumer_committed(ConsumerObject *self, PyObject *args)
{
    const char *topic;
    int part;
    if (!PyArg_ParseTuple(args, "si:committed", &topic, &part))
        return NULL;
    int64_t off = -1;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer",
         sluice_consumer_committed(self->c, topic, part, &off));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    return PyLong_FromLongLong(off);
}

/* (count, last error) of the failed auto-commits (enable.auto.commit) */
static PyObject *consumer_auto_commit_failures(ConsumerObject *self,
                                               PyObject *unused)
{
    char err[256] = "";
    unsigned long long n;
    (void)unused;
    if (sl_obj_enter(&self->b, "Consumer") < 0)
        return NULL;
    n = (unsigned long long)sluice_consumer_auto_commit_failures(self->c, err,
                                                                 sizeof(err));
    sl_obj_leave(&self->b);
    return Py_BuildValue("(Ks)", n, err);
}

static PyObject *consumer_commit(ConsumerObject *self, PyObject *unused)
{
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Consumer", sluice_consumer_commit(self->c));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *consumer_commit_offsets(ConsumerObject *self, PyObject *args)
{
    PyObject *list, *keep = NULL;
    if (!PyArg_ParseTuple(args, "O:commit_offsets", &list))
        return NULL;
    size_t n = 0;
    sluice_topic_partition *tps = tps_from(list, &n, &keep);
    if (tps == NULL)
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    if (sl_obj_enter(&self->b, "Consumer") < 0) {
        PyMem_Free(tps);
        Py_DECREF(keep);
        return NULL;
    }
    SL_NOGIL_BEGIN();
    rc = sluice_consumer_commit_offsets(self->c, tps, n);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    PyMem_Free(tps);
    Py_DECREF(keep);
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

/*
 * Shared poll loop for both consumer kinds: up to max messages (max >= 1),
 * waiting up to timeout. Returns a list (possibly empty) of Messages.
 */
typedef sluice_err (*poll_batch_fn)(void *h, int timeout_ms,
                                    sluice_message **msgs, size_t max,
                                    size_t *count);

static sluice_err consumer_poll_batch_thunk(void *h, int t, sluice_message **m,
                                            size_t max, size_t *n)
{
    return sluice_consumer_poll_batch(h, t, m, max, n);
}

static sluice_err qc_poll_batch_thunk(void *h, int t, sluice_message **m,
                                      size_t max, size_t *n)
{
    return sluice_queue_consumer_poll_batch(h, t, m, max, n);
}

static PyObject *poll_common(sl_obj *b, void **handle, poll_batch_fn fn,
                             const char *what, PyObject *owner,
                             PyObject **topic_cache, PyObject *targ,
                             Py_ssize_t max)
{
    int64_t t;
    if (parse_timeout(targ, &t) < 0)
        return NULL;
    if (max < 1) {
        raise_code(SLUICE_ERR_INVALID_ARG, "max_messages must be >= 1");
        return NULL;
    }
    sluice_message *one[1];
    sluice_message **msgs = one;
    if (max > 1) {
        msgs = PyMem_Malloc((size_t)max * sizeof(*msgs));
        if (msgs == NULL)
            return PyErr_NoMemory();
    }
    int64_t deadline = t < 0 ? -1 : now_ms() + t;
    PyObject *list = NULL;
    size_t n = 0;
    for (;;) {
        if (sl_obj_enter(b, what) < 0)
            goto out;
        int s = slice_ms(deadline);
        sluice_err rc;
        char detail[DETAIL_MAX] = "";
        SL_NOGIL_BEGIN();
        rc = fn(*handle, s, msgs, (size_t)max, &n);
        if (rc != SLUICE_OK && rc != SLUICE_ERR_TIMEOUT)
            grab_detail(detail);
        SL_NOGIL_END();
        sl_obj_leave(b);
        if (rc == SLUICE_OK && n > 0)
            break;
        n = 0;
        /* a queue consumer waits for its topic to be created (when the
         * broker does not auto-create topics) until the whole timeout
         * passed, not only this slice */
        if (rc == SLUICE_ERR_UNKNOWN_TOPIC && fn == qc_poll_batch_thunk &&
            s > 0 && (deadline < 0 || now_ms() < deadline))
            rc = SLUICE_ERR_TIMEOUT;
        if (rc != SLUICE_OK && rc != SLUICE_ERR_TIMEOUT) {
            raise_code(rc, detail);
            goto out;
        }
        if (s == 0) {
            list = PyList_New(0);
            goto out;
        }
        if (PyErr_CheckSignals() < 0)
            goto out;
    }
    list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        if (list != NULL) {
            PyObject *m = message_new(msgs[i], owner, topic_cache);
            if (m == NULL)
                Py_CLEAR(list);
            else
                PyList_SET_ITEM(list, (Py_ssize_t)i, m);
        }
        sluice_message_free(msgs[i]);
    }
out:
    if (msgs != one)
        PyMem_Free(msgs);
    return list;
}

/* poll(timeout_ms=None, max_messages=1) -> list[Message] */
static PyObject *consumer_poll(ConsumerObject *self, PyObject *args)
{
    PyObject *targ = NULL;
    Py_ssize_t max = 1;
    if (!PyArg_ParseTuple(args, "|On:poll", &targ, &max))
        return NULL;
    return poll_common(&self->b, (void **)&self->c, consumer_poll_batch_thunk,
                       "Consumer", NULL, &self->topic_cache, targ, max);
}

static PyMethodDef consumer_methods[] = {
    {"assign", (PyCFunction)consumer_assign, METH_VARARGS,
     "assign([(topic, partition, offset), ...])"},
    {"assign_topic", (PyCFunction)consumer_assign_topic, METH_VARARGS,
     "assign_topic(topic, offset)"},
    {"subscribe", (PyCFunction)consumer_subscribe, METH_VARARGS,
     "subscribe([topic, ...])"},
    {"assignment", (PyCFunction)consumer_assignment, METH_NOARGS,
     "assignment() -> [(topic, partition, position), ...]"},
    {"seek", (PyCFunction)consumer_seek, METH_VARARGS,
     "seek(topic, partition, offset)"},
    {"seek_time", (PyCFunction)consumer_seek_time, METH_VARARGS,
     "seek_time(topic, partition, ts_ms)"},
    {"offset_for_time", (PyCFunction)consumer_offset_for_time, METH_VARARGS,
     "offset_for_time(topic, partition, ts_ms) -> int"},
    {"watermarks", (PyCFunction)consumer_watermarks, METH_VARARGS,
     "watermarks(topic, partition) -> (low, high)"},
    {"committed", (PyCFunction)consumer_committed, METH_VARARGS,
     "committed(topic, partition) -> int"},
    {"commit", (PyCFunction)consumer_commit, METH_NOARGS, "commit()"},
    {"auto_commit_failures", (PyCFunction)consumer_auto_commit_failures,
     METH_NOARGS, "auto_commit_failures() -> (count, last error)"},
    {"commit_offsets", (PyCFunction)consumer_commit_offsets, METH_VARARGS,
     "commit_offsets([(topic, partition, next_offset), ...])"},
    {"poll", (PyCFunction)consumer_poll, METH_VARARGS,
     "poll(timeout_ms=None, max_messages=1) -> list[Message]"},
    {"close", (PyCFunction)consumer_close, METH_NOARGS, "close()"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ConsumerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sluice._sluice.Consumer",
    .tp_basicsize = sizeof(ConsumerObject),
    .tp_dealloc = (destructor)consumer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Low-level stream consumer handle; use sluice.Consumer.",
    .tp_methods = consumer_methods,
    .tp_getset = obj_getset,
    .tp_init = (initproc)consumer_init,
    .tp_new = sl_obj_tp_new,
};

/* ---- QueueConsumer ---------------------------------------------------- */

struct QueueConsumerObject {
    sl_obj b;
    sluice_queue_consumer *qc;
    PyObject *topic_cache;
};

/* arg: {topic, group} */
static sluice_err qc_make(sluice_conf *conf, void *arg, void **out, char *err,
                          size_t n)
{
    const char **names = arg;
    return sluice_queue_consumer_new(conf, names[0], names[1],
                                     (sluice_queue_consumer **)out, err, n);
}

static int qc_init(QueueConsumerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"topic", "group", "config", NULL};
    const char *topic, *group;
    PyObject *cfg = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|O:QueueConsumer", kwlist,
                                     &topic, &group, &cfg))
        return -1;
    const char *names[2] = {topic, group};
    return sl_handle_init((void **)&self->qc, "QueueConsumer", cfg, NULL,
                          qc_make, names);
}

static void qc_destroy(void *h)
{
    sluice_queue_consumer_free(h);
}

static PyObject *qc_close(QueueConsumerObject *self, PyObject *unused)
{
    sl_handle_close(&self->b, (void **)&self->qc, qc_destroy);
    Py_RETURN_NONE;
}

static void qc_dealloc(QueueConsumerObject *self)
{
    sl_handle_dealloc(&self->b, (void **)&self->qc, qc_destroy);
    Py_CLEAR(self->topic_cache);
    sl_obj_fini(&self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *qc_poll(QueueConsumerObject *self, PyObject *args)
{
    PyObject *targ = NULL;
    Py_ssize_t max = 1;
    if (!PyArg_ParseTuple(args, "|On:poll", &targ, &max))
        return NULL;
    return poll_common(&self->b, (void **)&self->qc, qc_poll_batch_thunk,
                       "QueueConsumer", (PyObject *)self, &self->topic_cache,
                       targ, max);
}

static PyObject *qc_settle(QueueConsumerObject *self, MessageObject *m, int op,
                           int64_t delay_ms, const char *reason)
{
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    int32_t part = m->partition;
    int64_t off = m->offset;
    switch (op) {
    case OP_ACK:
        CALL(self, "QueueConsumer",
             sluice_queue_consumer_ack(self->qc, part, off));
        break;
    case OP_NACK:
        CALL(self, "QueueConsumer",
             sluice_queue_consumer_nack(self->qc, part, off, delay_ms));
        break;
    default:
        CALL(self, "QueueConsumer",
             sluice_queue_consumer_reject(self->qc, part, off, reason));
        break;
    }
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    m->settled = 1;
    Py_RETURN_NONE;
}

static PyObject *qc_touch_one(QueueConsumerObject *self, MessageObject *m,
                              int64_t lock_ms)
{
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    int64_t deadline = 0;
    CALL(self, "QueueConsumer",
         sluice_queue_consumer_touch(self->qc, m->partition, m->offset, lock_ms,
                                     &deadline));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    if (deadline > 0) /* 0: the group's lock time, not known here */
        m->lock_deadline = deadline;
    return PyLong_FromLongLong(deadline);
}

/* Settle by (partition, offset) without a Message (low-level). */
static PyObject *qc_ack(QueueConsumerObject *self, PyObject *args)
{
    int part;
    long long off;
    if (!PyArg_ParseTuple(args, "iL:ack", &part, &off))
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "QueueConsumer", sluice_queue_consumer_ack(self->qc, part, off));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *qc_flush(QueueConsumerObject *self, PyObject *args)
{
    PyObject *targ = NULL;
    if (!PyArg_ParseTuple(args, "|O:flush", &targ))
        return NULL;
    int64_t t;
    if (parse_timeout(targ, &t) < 0)
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "QueueConsumer",
         sluice_queue_consumer_flush(
             self->qc, t < 0 ? -1 : (t > INT32_MAX ? INT32_MAX : (int)t)));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *qc_held(QueueConsumerObject *self, PyObject *unused)
{
    if (sl_obj_enter(&self->b, "QueueConsumer") < 0)
        return NULL;
    size_t n;
    SL_NOGIL_BEGIN();
    n = sluice_queue_consumer_held(self->qc);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    return PyLong_FromSize_t(n);
}

static PyMethodDef qc_methods[] = {
    {"poll", (PyCFunction)qc_poll, METH_VARARGS,
     "poll(timeout_ms=None, max_messages=1) -> list[Message]"},
    {"ack", (PyCFunction)qc_ack, METH_VARARGS, "ack(partition, offset)"},
    {"flush", (PyCFunction)qc_flush, METH_VARARGS, "flush(timeout_ms=None)"},
    {"held", (PyCFunction)qc_held, METH_NOARGS, "held() -> int"},
    {"close", (PyCFunction)qc_close, METH_NOARGS, "close()"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject QueueConsumerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sluice._sluice.QueueConsumer",
    .tp_basicsize = sizeof(QueueConsumerObject),
    .tp_dealloc = (destructor)qc_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Low-level queue consumer handle; use sluice.QueueConsumer.",
    .tp_methods = qc_methods,
    .tp_getset = obj_getset,
    .tp_init = (initproc)qc_init,
    .tp_new = sl_obj_tp_new,
};

/* ---- Admin ------------------------------------------------------------ */

typedef struct {
    sl_obj b;
    sluice_admin *a;
} AdminObject;

static sluice_err admin_make(sluice_conf *conf, void *arg, void **out,
                             char *err, size_t n)
{
    (void)arg;
    return sluice_admin_new(conf, (sluice_admin **)out, err, n);
}

static int admin_init(AdminObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"config", NULL};
    PyObject *cfg = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Admin", kwlist, &cfg))
        return -1;
    return sl_handle_init((void **)&self->a, "Admin", cfg, NULL, admin_make,
                          NULL);
}

static void admin_destroy(void *h)
{
    sluice_admin_free(h);
}

static PyObject *admin_close(AdminObject *self, PyObject *unused)
{
    sl_handle_close(&self->b, (void **)&self->a, admin_destroy);
    Py_RETURN_NONE;
}

static void admin_dealloc(AdminObject *self)
{
    sl_handle_dealloc(&self->b, (void **)&self->a, admin_destroy);
    sl_obj_fini(&self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *admin_create_topic(AdminObject *self, PyObject *args)
{
    const char *name;
    int parts = 0;
    PyObject *cfg = Py_None;
    if (!PyArg_ParseTuple(args, "s|iO:create_topic", &name, &parts, &cfg))
        return NULL;
    sluice_kv *kvs = NULL;
    size_t n = 0;
    PyObject *keep = PyList_New(0);
    if (keep == NULL)
        return NULL;
    if (cfg != Py_None) {
        if (!PyDict_Check(cfg)) {
            Py_DECREF(keep);
            PyErr_SetString(PyExc_TypeError, "config must be a dict");
            return NULL;
        }
        kvs = PyMem_Calloc((size_t)PyDict_GET_SIZE(cfg) + 1, sizeof(*kvs));
        if (kvs == NULL) {
            Py_DECREF(keep);
            return PyErr_NoMemory();
        }
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(cfg, &pos, &k, &v)) {
            PyObject *ks = PyObject_Str(k), *vs = PyObject_Str(v);
            if (ks == NULL || vs == NULL || PyList_Append(keep, ks) < 0 ||
                PyList_Append(keep, vs) < 0) {
                Py_XDECREF(ks);
                Py_XDECREF(vs);
                goto fail;
            }
            Py_DECREF(ks);
            Py_DECREF(vs);
            kvs[n].key = (char *)PyUnicode_AsUTF8(ks);
            kvs[n].value = (char *)PyUnicode_AsUTF8(vs);
            if (kvs[n].key == NULL || kvs[n].value == NULL)
                goto fail;
            n++;
        }
    }
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    if (sl_obj_enter(&self->b, "Admin") < 0)
        goto fail;
    SL_NOGIL_BEGIN();
    rc = sluice_admin_create_topic(self->a, name, parts, kvs, n);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    PyMem_Free(kvs);
    Py_DECREF(keep);
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
fail:
    PyMem_Free(kvs);
    Py_DECREF(keep);
    return NULL;
}

static PyObject *admin_delete_topic(AdminObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:delete_topic", &name))
        return NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin", sluice_admin_delete_topic(self->a, name));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    Py_RETURN_NONE;
}

static PyObject *str_or_none(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

/* (name, partition_count, [(partition, log_start, log_end)], {configs}) */
static PyObject *topic_info_obj(const sluice_topic_info *t)
{
    PyObject *parts = PyList_New(0), *cfg = PyDict_New(), *r = NULL;
    if (parts == NULL || cfg == NULL)
        goto out;
    for (int32_t i = 0; t->partitions && i < t->partition_count; i++) {
        const sluice_partition_info *p = &t->partitions[i];
        PyObject *x =
            Py_BuildValue("(iLL)", (int)p->partition, (long long)p->log_start,
                          (long long)p->log_end);
        if (x == NULL || PyList_Append(parts, x) < 0) {
            Py_XDECREF(x);
            goto out;
        }
        Py_DECREF(x);
    }
    for (size_t i = 0; i < t->config_count; i++) {
        PyObject *v = str_or_none(t->configs[i].value);
        if (v == NULL || PyDict_SetItemString(cfg, t->configs[i].key, v) < 0) {
            Py_XDECREF(v);
            goto out;
        }
        Py_DECREF(v);
    }
    r = Py_BuildValue("(NiOO)", str_or_none(t->name), (int)t->partition_count,
                      parts, cfg);
out:
    Py_XDECREF(parts);
    Py_XDECREF(cfg);
    return r;
}

static PyObject *admin_list_topics(AdminObject *self, PyObject *unused)
{
    sluice_topic_list *tl = NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin", sluice_admin_list_topics(self->a, &tl));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    PyObject *l = PyList_New(0);
    for (size_t i = 0; l != NULL && i < tl->count; i++) {
        PyObject *t = topic_info_obj(&tl->topics[i]);
        if (t == NULL || PyList_Append(l, t) < 0)
            Py_CLEAR(l);
        Py_XDECREF(t);
    }
    sluice_topic_list_free(tl);
    return l;
}

static PyObject *admin_describe_topic(AdminObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:describe_topic", &name))
        return NULL;
    sluice_topic_info *ti = NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin", sluice_admin_describe_topic(self->a, name, &ti));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    PyObject *r = topic_info_obj(ti);
    sluice_topic_info_free(ti);
    return r;
}

/* (name, kind, state, generation, dlq_topic, dlq_depth,
 *  [(member_id, client_id, [(topic, partition)])],
 *  [(topic, partition, committed, log_end, lag, in_flight, available)]) */
static PyObject *group_info_obj(const sluice_group_info *g)
{
    PyObject *mem = PyList_New(0), *parts = PyList_New(0), *r = NULL;
    if (mem == NULL || parts == NULL)
        goto out;
    for (size_t i = 0; i < g->member_count; i++) {
        const sluice_group_member *m = &g->members[i];
        PyObject *as = PyList_New(0);
        if (as == NULL)
            goto out;
        for (size_t j = 0; j < m->assignment_count; j++) {
            PyObject *x = Py_BuildValue("(si)", m->assignments[j].topic,
                                        (int)m->assignments[j].partition);
            if (x == NULL || PyList_Append(as, x) < 0) {
                Py_XDECREF(x);
                Py_DECREF(as);
                goto out;
            }
            Py_DECREF(x);
        }
        PyObject *x = Py_BuildValue("(NNN)", str_or_none(m->member_id),
                                    str_or_none(m->client_id), as);
        if (x == NULL || PyList_Append(mem, x) < 0) {
            Py_XDECREF(x);
            goto out;
        }
        Py_DECREF(x);
    }
    for (size_t i = 0; i < g->partition_count; i++) {
        const sluice_group_partition *p = &g->partitions[i];
        PyObject *x = Py_BuildValue(
            "(NiLLLLL)", str_or_none(p->topic), (int)p->partition,
            (long long)p->committed, (long long)p->log_end, (long long)p->lag,
            (long long)p->in_flight, (long long)p->available);
        if (x == NULL || PyList_Append(parts, x) < 0) {
            Py_XDECREF(x);
            goto out;
        }
        Py_DECREF(x);
    }
    r = Py_BuildValue("(NsNiNLOO)", str_or_none(g->name),
                      g->kind == SLUICE_GROUP_QUEUE ? "queue" : "stream",
                      str_or_none(g->state), (int)g->generation,
                      str_or_none(g->dlq_topic), (long long)g->dlq_depth, mem,
                      parts);
out:
    Py_XDECREF(mem);
    Py_XDECREF(parts);
    return r;
}

static PyObject *admin_list_groups(AdminObject *self, PyObject *unused)
{
    sluice_group_list *gl = NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin", sluice_admin_list_groups(self->a, &gl));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    PyObject *l = PyList_New(0);
    for (size_t i = 0; l != NULL && i < gl->count; i++) {
        PyObject *g = group_info_obj(&gl->groups[i]);
        if (g == NULL || PyList_Append(l, g) < 0)
            Py_CLEAR(l);
        Py_XDECREF(g);
    }
    sluice_group_list_free(gl);
    return l;
}

static PyObject *admin_describe_group(AdminObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:describe_group", &name))
        return NULL;
    sluice_group_info *gi = NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin", sluice_admin_describe_group(self->a, name, &gi));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    PyObject *r = group_info_obj(gi);
    sluice_group_info_free(gi);
    return r;
}

static PyObject *admin_dlq_list(AdminObject *self, PyObject *args)
{
    const char *src = NULL;
    if (!PyArg_ParseTuple(args, "|z:dlq_list", &src))
        return NULL;
    sluice_dlq_list *dl = NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin", sluice_admin_dlq_list(self->a, src, &dl));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    PyObject *l = PyList_New(0);
    for (size_t i = 0; l != NULL && i < dl->count; i++) {
        PyObject *x = Py_BuildValue("(NNL)", str_or_none(dl->dlqs[i].topic),
                                    str_or_none(dl->dlqs[i].source_topic),
                                    (long long)dl->dlqs[i].depth);
        if (x == NULL || PyList_Append(l, x) < 0)
            Py_CLEAR(l);
        Py_XDECREF(x);
    }
    sluice_dlq_list_free(dl);
    return l;
}

static PyObject *admin_dlq_redrive(AdminObject *self, PyObject *args)
{
    const char *dlq, *to = NULL, *reason = NULL;
    double rate = 0;
    long long max = -1;
    if (!PyArg_ParseTuple(args, "s|zdzL:dlq_redrive", &dlq, &to, &rate, &reason,
                          &max))
        return NULL;
    int64_t moved = 0;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    CALL(self, "Admin",
         sluice_admin_dlq_redrive(self->a, dlq, to, rate, reason, max, &moved));
    if (rc != SLUICE_OK)
        return raise_code(rc, detail);
    return PyLong_FromLongLong(moved);
}

/* dict {key: value} -> sluice_kv array (PyMem; strings kept alive by the
 * list keep). NULL with an exception set on failure; *n = entries. */
static sluice_kv *kvs_from_dict(PyObject *cfg, PyObject *keep, size_t *n)
{
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    sluice_kv *kvs;
    if (!PyDict_Check(cfg)) {
        PyErr_SetString(PyExc_TypeError, "configs must be a dict");
        return NULL;
    }
    kvs = PyMem_Calloc((size_t)PyDict_GET_SIZE(cfg) + 1, sizeof(*kvs));
    if (kvs == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *n = 0;
    while (PyDict_Next(cfg, &pos, &k, &v)) {
        PyObject *ks = PyObject_Str(k), *vs = PyObject_Str(v);
        if (ks == NULL || vs == NULL || PyList_Append(keep, ks) < 0 ||
            PyList_Append(keep, vs) < 0) {
            Py_XDECREF(ks);
            Py_XDECREF(vs);
            goto fail;
        }
        Py_DECREF(ks);
        Py_DECREF(vs);
        kvs[*n].key = (char *)PyUnicode_AsUTF8(ks);
        kvs[*n].value = (char *)PyUnicode_AsUTF8(vs);
        if (kvs[*n].key == NULL || kvs[*n].value == NULL)
            goto fail;
        (*n)++;
    }
    return kvs;
fail:
    PyMem_Free(kvs);
    return NULL;
}

/* queue_group_config(topic, group, mode, configs=None) -> [(key, value)]:
 * the effective settings then the "stats.*" counters, in the broker's
 * order. mode: 0 upsert, 1 alter, 2 describe. */
static PyObject *admin_queue_group_config(AdminObject *self, PyObject *args)
{
    const char *topic, *group;
    int mode;
    PyObject *cfg = Py_None, *keep, *r = NULL;
    sluice_kv *kvs = NULL, *out = NULL;
    size_t n = 0, nout = 0;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    if (!PyArg_ParseTuple(args, "ssi|O:queue_group_config", &topic, &group,
                          &mode, &cfg))
        return NULL;
    keep = PyList_New(0);
    if (keep == NULL)
        return NULL;
    if (cfg != Py_None && (kvs = kvs_from_dict(cfg, keep, &n)) == NULL)
        goto out;
    if (sl_obj_enter(&self->b, "Admin") < 0)
        goto out;
    SL_NOGIL_BEGIN();
    rc = sluice_admin_queue_group_config(self->a, topic, group,
                                         (sluice_qgroup_config_mode)mode, kvs,
                                         n, &out, &nout);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    if (rc != SLUICE_OK) {
        raise_code(rc, detail);
        goto out;
    }
    r = PyList_New(0);
    for (size_t i = 0; r != NULL && i < nout; i++) {
        PyObject *x = Py_BuildValue("(NN)", str_or_none(out[i].key),
                                    str_or_none(out[i].value));
        if (x == NULL || PyList_Append(r, x) < 0)
            Py_CLEAR(r);
        Py_XDECREF(x);
    }
    sluice_kv_array_free(out, nout);
out:
    PyMem_Free(kvs);
    Py_DECREF(keep);
    return r;
}

/* call(verb, [(key, value), ...]) -> str (the JSON answer) */
static PyObject *admin_call(AdminObject *self, PyObject *args)
{
    const char *verb;
    PyObject *list, *seq = NULL, *r = NULL;
    sluice_kv *kvs = NULL;
    size_t n = 0, jlen = 0;
    char *json = NULL;
    sluice_err rc;
    char detail[DETAIL_MAX] = "";
    if (!PyArg_ParseTuple(args, "sO:call", &verb, &list))
        return NULL;
    seq = PySequence_Fast(list, "expected a list of (key, value) pairs");
    if (seq == NULL)
        return NULL;
    n = (size_t)PySequence_Fast_GET_SIZE(seq);
    kvs = PyMem_Calloc(n + 1, sizeof(*kvs));
    if (kvs == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i);
        const char *k, *v;
        if (!PyArg_ParseTuple(it, "ss:call argument", &k, &v))
            goto out;
        kvs[i].key = (char *)k;
        kvs[i].value = (char *)v;
    }
    if (sl_obj_enter(&self->b, "Admin") < 0)
        goto out;
    SL_NOGIL_BEGIN();
    rc = sluice_admin_call(self->a, verb, kvs, n, &json, &jlen);
    if (rc != SLUICE_OK)
        grab_detail(detail);
    SL_NOGIL_END();
    sl_obj_leave(&self->b);
    if (rc != SLUICE_OK) {
        raise_code(rc, detail);
        goto out;
    }
    r = PyUnicode_DecodeUTF8(json, (Py_ssize_t)jlen, "replace");
    sluice_free(json);
out:
    PyMem_Free(kvs);
    Py_DECREF(seq);
    return r;
}

static PyMethodDef admin_methods[] = {
    {"call", (PyCFunction)admin_call, METH_VARARGS,
     "call(verb, [(key, value), ...]) -> str (JSON)"},
    {"create_topic", (PyCFunction)admin_create_topic, METH_VARARGS,
     "create_topic(name, partitions=0, config=None)"},
    {"delete_topic", (PyCFunction)admin_delete_topic, METH_VARARGS,
     "delete_topic(name)"},
    {"list_topics", (PyCFunction)admin_list_topics, METH_NOARGS,
     "list_topics() -> list"},
    {"describe_topic", (PyCFunction)admin_describe_topic, METH_VARARGS,
     "describe_topic(name) -> tuple"},
    {"list_groups", (PyCFunction)admin_list_groups, METH_NOARGS,
     "list_groups() -> list"},
    {"describe_group", (PyCFunction)admin_describe_group, METH_VARARGS,
     "describe_group(name) -> tuple"},
    {"dlq_list", (PyCFunction)admin_dlq_list, METH_VARARGS,
     "dlq_list(source_topic=None) -> list"},
    {"dlq_redrive", (PyCFunction)admin_dlq_redrive, METH_VARARGS,
     "dlq_redrive(dlq_topic, to_topic=None, rate=0, reason=None, "
     "max_records=-1) -> int"},
    {"queue_group_config", (PyCFunction)admin_queue_group_config, METH_VARARGS,
     "queue_group_config(topic, group, mode, configs=None) -> list"},
    {"close", (PyCFunction)admin_close, METH_NOARGS, "close()"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject AdminType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sluice._sluice.Admin",
    .tp_basicsize = sizeof(AdminObject),
    .tp_dealloc = (destructor)admin_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Low-level admin handle; use sluice.Admin.",
    .tp_methods = admin_methods,
    .tp_getset = obj_getset,
    .tp_init = (initproc)admin_init,
    .tp_new = sl_obj_tp_new,
};

/* ---- module ------------------------------------------------------------ */

static PyObject *mod_set_error_factory(PyObject *m, PyObject *f)
{
    if (!PyCallable_Check(f)) {
        PyErr_SetString(PyExc_TypeError, "factory must be callable");
        return NULL;
    }
    Py_INCREF(f);
    Py_XSETREF(err_factory, f);
    Py_RETURN_NONE;
}

static PyObject *mod_strerror(PyObject *m, PyObject *args)
{
    int code;
    if (!PyArg_ParseTuple(args, "i:strerror", &code))
        return NULL;
    return PyUnicode_FromString(sluice_strerror(code));
}

static PyObject *mod_errname(PyObject *m, PyObject *args)
{
    int code;
    if (!PyArg_ParseTuple(args, "i:errname", &code))
        return NULL;
    return PyUnicode_FromString(sluice_errname(code));
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromString(sluice_version());
}

static PyObject *mod_partition_for_key(PyObject *m, PyObject *args)
{
    Py_buffer key;
    int parts;
    if (!PyArg_ParseTuple(args, "y*i:partition_for_key", &key, &parts))
        return NULL;
    int32_t p = sluice_partition_for_key(key.buf, (size_t)key.len, parts);
    PyBuffer_Release(&key);
    return PyLong_FromLong(p);
}

static PyMethodDef mod_methods[] = {
    {"_set_error_factory", mod_set_error_factory, METH_O,
     "Register factory(code, message, name) -> exception."},
    {"strerror", mod_strerror, METH_VARARGS,
     "strerror(code) -> str: description of a Sluice error code."},
    {"errname", mod_errname, METH_VARARGS,
     "errname(code) -> str: symbolic name of a Sluice error code."},
    {"version", mod_version, METH_NOARGS,
     "version() -> str: libsluice version."},
    {"partition_for_key", mod_partition_for_key, METH_VARARGS,
     "partition_for_key(key: bytes, partitions: int) -> int: the "
     "partition the default partitioner picks for key."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT,
    "sluice._sluice",
    "Low-level bindings to libsluice; use the sluice package.",
    -1,
    mod_methods,
    NULL,
    NULL,
    NULL,
    NULL};

PyMODINIT_FUNC PyInit__sluice(void)
{
    PyTypeObject *types[] = {&MessageType, &ProducerType, &ConsumerType,
                             &QueueConsumerType, &AdminType};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (PyType_Ready(types[i]) < 0)
            return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL)
        return NULL;
    const char *names[] = {"Message", "Producer", "Consumer", "QueueConsumer",
                           "Admin"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            Py_DECREF(m);
            return NULL;
        }
    }
    PyModule_AddIntConstant(m, "PARTITION_ANY", SLUICE_PARTITION_ANY);
    PyModule_AddIntConstant(m, "OFFSET_END", SLUICE_OFFSET_END);
    PyModule_AddIntConstant(m, "OFFSET_BEGINNING", SLUICE_OFFSET_BEGINNING);
    PyModule_AddIntConstant(m, "OFFSET_STORED", SLUICE_OFFSET_STORED);
    PyModule_AddStringConstant(m, "LIBSLUICE_VERSION", SLUICE_VERSION_STR);
    return m;
}
