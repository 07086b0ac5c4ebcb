"""sluice_wire_groups.py - encoders/decoders for the group and queue APIs
(docs/protocol.md 4.10-4.27) on top of sluice_wire, for tests.

    import sluice_wire as sw, sluice_wire_groups as swg
    c = sw.Client(addr)
    q = swg.Queue(c, "g", "t", "consumer-1")
    recs = q.acquire(10, max_wait_ms=1000)   # list of dicts
    q.ack([(0, r["offset"]) for r in recs])
"""

import struct

import sluice_wire as sw

API_GROUP_JOIN = 10
API_GROUP_HEARTBEAT = 11
API_GROUP_LEAVE = 12
API_OFFSET_COMMIT = 13
API_OFFSET_FETCH = 14
API_GROUP_LIST = 15
API_GROUP_DESCRIBE = 16
API_QUEUE_ACQUIRE = 20
API_QUEUE_ACK = 21
API_QUEUE_NACK = 22
API_QUEUE_REJECT = 23
API_QUEUE_TOUCH = 24
API_DLQ_LIST = 25
API_DLQ_REDRIVE = 26
API_QUEUE_GROUP_CONFIG = 27

ERR_UNKNOWN_GROUP = 19
ERR_UNKNOWN_MEMBER = 20
ERR_REBALANCE = 21
ERR_NOT_ACQUIRED = 22
ERR_LOCK_EXPIRED = 23


def _arr(items):
    return struct.pack("<I", len(items)) + b"".join(items)


# ---- queue ----------------------------------------------------------------

def acquire_body(group, topic, cid, max_records, max_bytes=1 << 24,
                 lock_ms=0, max_wait_ms=0):
    return (sw.str16(group) + sw.str16(topic) + sw.str16(cid) +
            struct.pack("<IIII", max_records, max_bytes, lock_ms,
                        max_wait_ms))


def decode_acquire(body):
    """List of dicts: partition, offset, attempts, failures, lock_deadline,
    key, value, headers (dict), timestamp. Only the listed offsets."""
    r = sw._ok(body)
    out = []
    for _ in range(r.u32()):
        part = r.u32()
        ents = []
        for _ in range(r.u32()):
            off = r.i64()
            att = r.u16()
            fail = r.u16()
            dl = r.i64()
            ents.append((off, att, fail, dl))
        recs = {x["offset"]: x for x in sw.decode_batches(r.blob32())}
        for off, att, fail, dl in ents:
            rec = recs.get(off)
            assert rec is not None, "entry %d/%d without its record" % (
                part, off)
            out.append({"partition": part, "offset": off, "attempts": att,
                        "failures": fail, "lock_deadline": dl,
                        "key": rec["key"], "value": rec["value"],
                        "timestamp": rec["timestamp"],
                        "headers": dict((k.decode(), v)
                                        for k, v in rec["headers"])})
    return out


def settle_body(api, group, topic, cid, ranges, delay_ms=-1, reason=None,
                extend_ms=0):
    """ranges: list of (partition, first, last) or (partition, offset)."""
    byp = {}
    for rg in ranges:
        p, first = rg[0], rg[1]
        last = rg[2] if len(rg) > 2 else first
        byp.setdefault(p, []).append((first, last))
    parts = []
    for p in sorted(byp):
        rs = []
        for first, last in byp[p]:
            x = struct.pack("<qq", first, last)
            if api == API_QUEUE_NACK:
                x += struct.pack("<i", delay_ms)
            elif api == API_QUEUE_REJECT:
                x += sw.str16(reason)
            elif api == API_QUEUE_TOUCH:
                x += struct.pack("<I", extend_ms)
            rs.append(x)
        parts.append(struct.pack("<I", p) + _arr(rs))
    return sw.str16(group) + sw.str16(topic) + sw.str16(cid) + _arr(parts)


def decode_settle(body):
    """List of (partition, first, last, error)."""
    r = sw._ok(body)
    out = []
    for _ in range(r.u32()):
        p = r.u32()
        for _ in range(r.u32()):
            first = r.i64()
            last = r.i64()
            out.append((p, first, last, r.i32()))
    return out


def qconfig_body(group, topic, mode=0, configs=None):
    kvs = [sw.str16(k) + sw.str16(str(v)) for k, v in (configs or {}).items()]
    return sw.str16(group) + sw.str16(topic) + struct.pack("<B", mode) + \
        _arr(kvs)


def decode_kvs(body):
    r = sw._ok(body)
    out = {}
    for _ in range(r.u32()):
        k = r.str16()
        out[k] = r.str16()
    return out


class Queue:
    """A binary-protocol queue consumer (one consumer_id)."""

    def __init__(self, client, group, topic, cid):
        self.c = client
        self.group = group
        self.topic = topic
        self.cid = cid

    def acquire(self, n, max_wait_ms=0, lock_ms=0, max_bytes=1 << 24):
        return decode_acquire(self.c.call(API_QUEUE_ACQUIRE, acquire_body(
            self.group, self.topic, self.cid, n, max_bytes, lock_ms,
            max_wait_ms)))

    def _settle(self, api, ranges, **kw):
        return decode_settle(self.c.call(api, settle_body(
            api, self.group, self.topic, self.cid, ranges, **kw)))

    def ack(self, ranges):
        return self._settle(API_QUEUE_ACK, ranges)

    def nack(self, ranges, delay_ms=-1):
        return self._settle(API_QUEUE_NACK, ranges, delay_ms=delay_ms)

    def reject(self, ranges, reason=None):
        return self._settle(API_QUEUE_REJECT, ranges, reason=reason)

    def touch(self, ranges, extend_ms):
        return self._settle(API_QUEUE_TOUCH, ranges, extend_ms=extend_ms)


def queue_config(client, group, topic, configs=None, mode=0):
    return decode_kvs(client.call(API_QUEUE_GROUP_CONFIG, qconfig_body(
        group, topic, mode, configs)))


# ---- groups -----------------------------------------------------------------

def describe(client, group):
    r = sw._ok(client.call(API_GROUP_DESCRIBE, sw.str16(group)))
    d = {"group": r.str16(), "kind": r._u("<B"), "state": r.str16(),
         "generation": r.i32(), "dlq_topic": r.str16(), "dlq_depth": r.i64(),
         "members": [], "partitions": []}
    for _ in range(r.u32()):
        m = {"member_id": r.str16(), "client_id": r.str16(), "assigned": []}
        for _ in range(r.u32()):
            m["assigned"].append((r.str16(), r.u32()))
        d["members"].append(m)
    for _ in range(r.u32()):
        d["partitions"].append({"topic": r.str16(), "partition": r.u32(),
                                "committed": r.i64(), "log_end": r.i64(),
                                "lag": r.i64(), "in_flight": r.u32()})
    return d


def group_list(client):
    r = sw._ok(client.call(API_GROUP_LIST, b""))
    out = []
    for _ in range(r.u32()):
        out.append({"group": r.str16(), "kind": r._u("<B"),
                    "state": r.str16(), "members": r.u32()})
    return out


def join(client, group, topics, member_id=None, client_id="pytest",
         session_ms=10000):
    body = (sw.str16(group) + sw.str16(member_id) + sw.str16(client_id) +
            struct.pack("<IIB", session_ms, session_ms, 0) +
            _arr([sw.str16(t) for t in topics]))
    r = sw._ok(client.call(API_GROUP_JOIN, body))
    mid = r.str16()
    gen = r.i32()
    r.u32()
    assign = []
    for _ in range(r.u32()):
        t = r.str16()
        for _ in range(r.u32()):
            assign.append((t, r.u32()))
    return mid, gen, sorted(assign)


def heartbeat(client, group, member_id, generation):
    err, _, _ = sw.status(client.call(
        API_GROUP_HEARTBEAT, sw.str16(group) + sw.str16(member_id) +
        struct.pack("<i", generation)))
    return err


def leave(client, group, member_id):
    err, _, _ = sw.status(client.call(
        API_GROUP_LEAVE, sw.str16(group) + sw.str16(member_id)))
    return err


def commit(client, group, offsets, member_id=None, generation=-1):
    """offsets: {(topic, partition): offset}. Returns {(t, p): error}."""
    byt = {}
    for (t, p), o in offsets.items():
        byt.setdefault(t, []).append(struct.pack("<Iq", p, o) +
                                     sw.str16(None))
    body = (sw.str16(group) + sw.str16(member_id) +
            struct.pack("<i", generation) +
            _arr([sw.str16(t) + _arr(ps) for t, ps in byt.items()]))
    r = sw._ok(client.call(API_OFFSET_COMMIT, body))
    out = {}
    for _ in range(r.u32()):
        t = r.str16()
        for _ in range(r.u32()):
            p = r.u32()
            out[(t, p)] = r.i32()
    return out


def committed(client, group, tps=None):
    """{(t, p): offset}; tps None = every committed offset."""
    byt = {}
    for t, p in tps or []:
        byt.setdefault(t, []).append(struct.pack("<I", p))
    body = sw.str16(group) + _arr([sw.str16(t) + _arr(ps)
                                   for t, ps in byt.items()])
    r = sw._ok(client.call(API_OFFSET_FETCH, body))
    out = {}
    for _ in range(r.u32()):
        t = r.str16()
        for _ in range(r.u32()):
            p = r.u32()
            r.i32()
            out[(t, p)] = r.i64()
            r.str16()
    return out


def dlq_list(client, topic=None, group=None):
    r = sw._ok(client.call(API_DLQ_LIST, sw.str16(topic) + sw.str16(group)))
    out = []
    for _ in range(r.u32()):
        out.append({"dlq_topic": r.str16(), "source_topic": r.str16(),
                    "group": r.str16(), "depth": r.i64(),
                    "start_offset": r.i64(), "end_offset": r.i64()})
    return out


def dlq_redrive(client, dlq_topic, target=None, reason=None, max_records=0,
                rate=0):
    r = sw._ok(client.call(API_DLQ_REDRIVE, sw.str16(dlq_topic) +
                           sw.str16(target) + sw.str16(reason) +
                           struct.pack("<II", max_records, rate)))
    return r.i64(), r.i64()
