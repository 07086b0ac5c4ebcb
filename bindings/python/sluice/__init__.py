"""Sluice: Python bindings for the Sluice message broker.

A thin layer over libsluice (the C client library, through the extension
module ``sluice._sluice``): the binary protocol, batching, compression and
pipelining all happen in C, with the GIL released while they block.

    import sluice

    with sluice.Producer("127.0.0.1:7410") as producer:
        producer.send("orders", b'{"id": 1}', key=b"customer-7").result()

    with sluice.QueueConsumer("127.0.0.1:7410", "orders", "billing") as q:
        for msg in q:
            handle(msg.value)
            msg.ack()

Classes: :class:`Producer`, :class:`Consumer` (stream consumer: offsets,
optional stream group), :class:`QueueConsumer` (queue group: per-message
ack/nack/reject/touch), :class:`Admin` (topics, groups, lag, dead-letter
topics) and :class:`Message`. Errors are :class:`SluiceError` subclasses
(see :mod:`sluice.errors`).

The broker address: ``bootstrap`` when given, else the environment
variable ``SLUICE_BOOTSTRAP``, else ``127.0.0.1:7410``. A broker with users
needs a login: ``user="alice", password="..."`` (or the environment
variables ``SLUICE_USER`` and ``SLUICE_PASSWORD``); a wrong one raises
:class:`AuthenticationError`, an operation no rule allows
:class:`AuthorizationError`.

Configuration: keyword arguments are libsluice configuration keys with the
dots written as underscores (``linger_ms=5`` is ``linger.ms``), or pass
``config={"linger.ms": "5"}``. TLS: ``tls=True``, ``tls_ca="ca.crt"``,
``tls_cert=``/``tls_key=`` for mutual TLS, ``tls_verify`` (on by default). Every object is a context manager and is safe
to use from several threads (calls on one object are serialised; use one
object per thread for parallelism).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import (Any, AsyncIterator, Callable, Dict, Iterable, Iterator,
                    List, Mapping, NamedTuple, Optional, Sequence, Tuple,
                    Union)

from . import _sluice
from . import errors
from .errors import *  # noqa: F401,F403  (the exception classes)
from .errors import (ClosedError, SluiceError, SluiceTimeoutError,
                     error_from_code)

_sluice._set_error_factory(
    lambda code, message, name: error_from_code(code, message, name))

Message = _sluice.Message

__version__ = "0.1.0"
LIBSLUICE_VERSION: str = _sluice.version()

#: The address used when ``bootstrap`` is None (the default) and the
#: environment variable ``SLUICE_BOOTSTRAP`` is not set (libsluice reads it,
#: as the ``sluice`` CLI does).
DEFAULT_BOOTSTRAP = "127.0.0.1:7410"

#: Start at the earliest offset still stored.
OFFSET_BEGINNING: int = _sluice.OFFSET_BEGINNING
#: Start at the log end (only records produced from now on).
OFFSET_END: int = _sluice.OFFSET_END
#: Start at the group's committed offset (else ``auto_offset_reset``).
OFFSET_STORED: int = _sluice.OFFSET_STORED

__all__ = [
    "Producer", "Consumer", "QueueConsumer", "Admin", "Message",
    "DeliveryFuture", "RecordMetadata", "TopicPartition", "PartitionInfo",
    "TopicInfo", "GroupMember", "GroupPartition", "GroupInfo", "DLQInfo",
    "OFFSET_BEGINNING", "OFFSET_END", "OFFSET_STORED", "DEFAULT_BOOTSTRAP",
    "partition_for_key", "strerror", "errors",
] + list(errors.__all__)

_log = logging.getLogger("sluice")

Headers = Union[Mapping[str, Union[bytes, str, None]],
                Sequence[Tuple[str, Union[bytes, str, None]]]]
Bytes = Union[bytes, bytearray, memoryview, str]


def strerror(code: int) -> str:
    """Description of a Sluice error code, e.g. ``strerror(7)``."""
    return _sluice.strerror(code)


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition the default partitioner (FNV-1a) chooses for ``key``."""
    return _sluice.partition_for_key(key, partitions)


#: The TLS keyword arguments and the libsluice keys they set
#: (docs/security.md); tls=True is security.protocol=ssl.
_TLS_KWARGS = {"tls_ca": "ssl.ca.location",
               "tls_cert": "ssl.certificate.location",
               "tls_key": "ssl.key.location",
               "tls_verify": "enable.ssl.certificate.verification"}

#: Keyword arguments with names of their own: ``user=`` and ``password=``
#: log in (SCRAM-SHA-256; default: the SLUICE_USER and SLUICE_PASSWORD
#: environment variables, read by libsluice).
_ALIASES = {"user": "sasl.username", "password": "sasl.password"}


def _conf(bootstrap: Optional[str], config: Optional[Mapping[str, Any]],
          kwargs: Mapping[str, Any]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if bootstrap:
        out["bootstrap"] = bootstrap
    for src in (config or {}), kwargs:
        for k, v in src.items():
            if src is kwargs and k == "tls":
                out["security.protocol"] = "ssl" if v else "plaintext"
                continue
            if src is kwargs and k in _TLS_KWARGS:
                k = _TLS_KWARGS[k]
                if v is None:
                    continue
            key = k if src is config else _ALIASES.get(k, k.replace("_", "."))
            if isinstance(v, bool):
                v = "true" if v else "false"
            out[key] = str(v)
    return out


def _ms(seconds: Optional[float]) -> Optional[int]:
    if seconds is None:
        return None
    if seconds < 0:
        raise ValueError("timeout must be >= 0 seconds or None")
    return int(seconds * 1000 + 0.5)


# ---- results ----------------------------------------------------------------

class RecordMetadata(NamedTuple):
    """Where a produced record was stored."""
    topic: str
    partition: int
    offset: int       #: -1 with acks="none"
    timestamp: int    #: ms since the epoch


class TopicPartition(NamedTuple):
    """A partition and an offset (meaning depends on the call; None in
    :meth:`Consumer.assign` means the default start)."""
    topic: str
    partition: int
    offset: Optional[int] = None


class PartitionInfo(NamedTuple):
    partition: int
    log_start: int  #: earliest stored offset
    log_end: int    #: next offset to be written


class TopicInfo(NamedTuple):
    name: str
    partition_count: int
    partitions: List[PartitionInfo]
    config: Dict[str, str]


class GroupMember(NamedTuple):
    member_id: str
    client_id: Optional[str]
    assignments: List[Tuple[str, int]]


class GroupPartition(NamedTuple):
    topic: str
    partition: int
    committed: int   #: stream: committed offset; queue: start offset
    log_end: int
    lag: int
    in_flight: int   #: queue groups: acquired records (-1 for streams)
    available: int   #: queue groups: available in the window (-1 unknown)


class GroupInfo(NamedTuple):
    name: str
    kind: str            #: "stream" or "queue"
    state: Optional[str]
    generation: int
    dlq_topic: Optional[str]
    dlq_depth: int
    members: List[GroupMember]
    partitions: List[GroupPartition]

    @property
    def lag(self) -> int:
        """Total lag over all partitions."""
        return sum(max(p.lag, 0) for p in self.partitions)


class DLQInfo(NamedTuple):
    topic: str
    source_topic: Optional[str]
    depth: int


def _topic_info(t: tuple) -> TopicInfo:
    return TopicInfo(t[0], t[1], [PartitionInfo(*p) for p in t[2]], t[3])


def _group_info(g: tuple) -> GroupInfo:
    return GroupInfo(g[0], g[1], g[2], g[3], g[4], g[5],
                     [GroupMember(m[0], m[1], list(m[2])) for m in g[6]],
                     [GroupPartition(*p) for p in g[7]])


# ---- producer ----------------------------------------------------------------

DeliveryCallback = Callable[[Optional[SluiceError], RecordMetadata], Any]


class DeliveryFuture:
    """The outcome of :meth:`Producer.send`.

    ``result(timeout)`` waits for the broker's acknowledgement and returns a
    :class:`RecordMetadata` (or raises the :class:`SluiceError` that kept the
    record from being stored). ``await future`` does the same from asyncio.
    """

    __slots__ = ("_producer", "topic", "_cb", "_done", "_meta", "_exc",
                 "_callbacks")

    def __init__(self, producer: "Producer", topic: str,
                 cb: Optional[DeliveryCallback]) -> None:
        self._producer = producer
        self.topic = topic
        self._cb = cb
        self._done = False
        self._meta: Optional[RecordMetadata] = None
        self._exc: Optional[SluiceError] = None
        self._callbacks: Optional[List[Callable[["DeliveryFuture"], Any]]] \
            = None

    # Called by the extension (with the GIL) when the report arrives.
    def _resolve(self, partition: int, offset: int, timestamp: int,
                 err: int) -> None:
        self._meta = RecordMetadata(self.topic, partition, offset, timestamp)
        if err:
            self._exc = error_from_code(
                err, "topic '%s'%s: %s" % (
                    self.topic,
                    " partition %d" % partition if partition >= 0 else "",
                    "producer closed before the record was delivered"
                    if err == ClosedError.code else _sluice.strerror(err)))
        self._done = True
        self._producer = None  # no cycle once done
        if self._cb is not None:
            try:
                self._cb(self._exc, self._meta)
            except Exception:
                _log.exception("sluice: on_delivery callback raised")
        if self._callbacks:
            for fn in self._callbacks:
                try:
                    fn(self)
                except Exception:
                    _log.exception("sluice: done callback raised")

    def done(self) -> bool:
        """True once the broker answered (or the send failed)."""
        return self._done

    def _wait(self, timeout: Optional[float]) -> None:
        if self._done:
            return
        producer = self._producer
        if producer is None:  # resolved concurrently
            return
        producer._wait_for(self, timeout)

    def result(self, timeout: Optional[float] = None) -> RecordMetadata:
        """Wait up to ``timeout`` seconds (None: forever) for the report.

        Raises :class:`SluiceTimeoutError` if it did not come in time, or the
        delivery error."""
        self._wait(timeout)
        if self._exc is not None:
            raise self._exc
        assert self._meta is not None
        return self._meta

    def exception(self, timeout: Optional[float] = None
                  ) -> Optional[SluiceError]:
        """Like :meth:`result`, but return the delivery error (or None)."""
        self._wait(timeout)
        return self._exc

    def add_done_callback(self, fn: Callable[["DeliveryFuture"], Any]
                          ) -> None:
        """Call ``fn(future)`` when done (at once if already done)."""
        if self._done:
            fn(self)
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(fn)

    def __await__(self):
        if self._done:
            return self.result()
        loop = asyncio.get_running_loop()
        return (yield from loop.run_in_executor(None, self.result).__await__())

    def __repr__(self) -> str:
        if not self._done:
            return "<DeliveryFuture topic=%r pending>" % self.topic
        if self._exc is not None:
            return "<DeliveryFuture topic=%r error=%r>" % (self.topic,
                                                            self._exc)
        return "<DeliveryFuture %r>" % (self._meta,)


class _PumpState:
    __slots__ = ("stop",)

    def __init__(self) -> None:
        self.stop = False


def _run_pump(c: Any, wake: threading.Event, state: _PumpState,
              interval: float) -> None:
    """The producer's background thread: keeps lingering batches moving and
    reports flowing while the application does not call into the producer.
    Non-blocking polls only, so it never holds the handle for long."""
    while True:
        wake.wait()
        wake.clear()
        while not state.stop:
            try:
                c.poll(0)
                if c.outstanding() == 0:
                    break
            except ClosedError:
                return
            except Exception:
                _log.exception("sluice: producer background poll")
            time.sleep(interval)
        if state.stop:
            return


class Producer:
    """Sends records to topics, batching them in libsluice.

    ``Producer(bootstrap=None, on_delivery=None, **config)``

    Useful configuration (libsluice keys, dots as underscores): ``acks``
    (``"durable"`` default, ``"written"``, ``"none"``), ``linger_ms`` (5),
    ``batch_size`` (bytes, 262144), ``compression`` (``"none"``/``"zstd"``),
    ``client_id``, ``request_timeout_ms``.

    ``send()`` returns a :class:`DeliveryFuture` at once; the record goes out
    with its batch. Delivery reports are processed whenever the producer is
    driven: by ``send``, ``poll``, ``flush``, ``future.result()``, or by the
    producer's small background thread, which keeps records flowing while
    the application does something else. ``on_delivery(err, metadata)``
    callbacks (per producer or per send) run on whichever of those threads
    processed the report; keep them short.

    ``close()`` (or leaving the ``with`` block) flushes first.
    """

    def __init__(self, bootstrap: Optional[str] = None, *,
                 on_delivery: Optional[DeliveryCallback] = None,
                 config: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> None:
        self._on_delivery = on_delivery
        conf = _conf(bootstrap, config, kwargs)
        try:
            linger = float(conf.get("linger.ms", "5"))
        except ValueError:
            linger = 5.0
        self._pump_interval = min(max(linger, 1.0), 100.0) / 1000.0
        self._c = _sluice.Producer(conf)
        self._wake = threading.Event()
        self._state = _PumpState()
        # The thread must not reference self, or an unclosed producer could
        # never be collected.
        self._pump = threading.Thread(
            target=_run_pump,
            args=(self._c, self._wake, self._state, self._pump_interval),
            name="sluice-producer", daemon=True)
        self._pump.start()

    def send(self, topic: str, value: Optional[Bytes], key: Optional[Bytes]
             = None, headers: Optional[Headers] = None,
             partition: Optional[int] = None, timestamp: Optional[int] = None,
             on_delivery: Optional[DeliveryCallback] = None
             ) -> DeliveryFuture:
        """Queue one record and return its :class:`DeliveryFuture`.

        ``value`` and ``key`` are bytes (``str`` is encoded as UTF-8;
        ``None`` is a null value, a tombstone on compacted topics).
        ``headers`` is a dict or a list of ``(name, value)`` pairs.
        ``partition`` None lets the partitioner choose (by key hash; no key:
        spread). ``timestamp`` in ms since the epoch (None: now).

        Raises at once (nothing queued) on an unknown topic that is not
        auto-created, an unknown partition, a record too large, or a closed
        producer; later failures come through the future.
        """
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        fut = DeliveryFuture(self, topic, on_delivery or self._on_delivery)
        self._c.send(topic, value, key, headers,
                     -1 if partition is None else partition,
                     timestamp or 0, fut)
        if not self._wake.is_set():
            self._wake.set()
        return fut

    def poll(self, timeout: float = 0) -> int:
        """Send batches whose linger expired and process delivery reports,
        waiting up to ``timeout`` seconds for at least one. Returns the
        number of reports processed."""
        return self._c.poll(_ms(timeout))

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send everything queued and wait until every record is
        acknowledged (or failed: see the futures). Raises
        :class:`SluiceTimeoutError` if records are still outstanding after
        ``timeout`` seconds."""
        if not self._c.flush(_ms(timeout)):
            raise SluiceTimeoutError(
                "flush: %d record(s) still outstanding after %ss" %
                (self._c.outstanding(), timeout))

    def _wait_for(self, fut: DeliveryFuture, timeout: Optional[float]
                  ) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not fut._done:
            left = 0.05 if deadline is None else min(
                0.05, deadline - time.monotonic())
            if left <= 0:
                raise SluiceTimeoutError(
                    "no delivery report for a record to topic '%s' within "
                    "%ss" % (fut.topic, timeout))
            self._c.poll(_ms(left))

    def partitions_for(self, topic: str) -> int:
        """Number of partitions of ``topic``."""
        return self._c.partitions(topic)

    def __len__(self) -> int:
        """Records queued or in flight."""
        return self._c.outstanding()

    @property
    def closed(self) -> bool:
        return self._c.closed

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush (up to ``timeout`` seconds), then close the connection.
        Records still not delivered fail their futures with
        :class:`ClosedError`. Idempotent."""
        if self._c.closed:
            return
        try:
            self._c.flush(_ms(timeout))
        finally:
            self._state.stop = True
            self._wake.set()
            if self._pump is not threading.current_thread():
                self._pump.join()
            self._c.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._c.closed:
                self._state.stop = True
                self._wake.set()
        except AttributeError:
            pass


# ---- consumers ---------------------------------------------------------------

class _ConsumerBase:
    _c: Any

    def poll(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, waiting up to ``timeout`` seconds (None:
        until one arrives). Returns None on timeout."""
        msgs = self._c.poll(_ms(timeout), 1)
        return msgs[0] if msgs else None

    def consume(self, max_messages: int = 100,
                timeout: Optional[float] = None) -> List[Message]:
        """Up to ``max_messages`` messages at once (fewer if fewer are
        ready), waiting up to ``timeout`` seconds for the first one."""
        return self._c.poll(_ms(timeout), max_messages)

    def messages(self, idle_timeout: Optional[float] = None
                 ) -> Iterator[Message]:
        """Iterate over messages as they arrive. Ends when the consumer is
        closed, or when nothing arrived for ``idle_timeout`` seconds."""
        idle_ms = _ms(idle_timeout)
        while True:
            try:
                msgs = self._c.poll(idle_ms, 64)
            except ClosedError:
                return
            if not msgs:
                return
            yield from msgs

    def __iter__(self) -> Iterator[Message]:
        return self.messages()

    async def aiter(self, idle_timeout: Optional[float] = None,
                    poll_interval: float = 0.5, max_messages: int = 64,
                    executor: Any = None) -> AsyncIterator[Message]:
        """Async iteration for asyncio programs::

            async for msg in consumer.aiter():
                ...

        The blocking poll runs in ``executor`` (default: the loop's thread
        pool) with the GIL released, ``poll_interval`` seconds at a time, so
        the event loop never blocks. Ends when the consumer is closed or
        after ``idle_timeout`` seconds without a message."""
        loop = asyncio.get_running_loop()
        interval = _ms(poll_interval)
        idle_until = None if idle_timeout is None \
            else time.monotonic() + idle_timeout
        while True:
            try:
                msgs = await loop.run_in_executor(
                    executor, self._c.poll, interval, max_messages)
            except ClosedError:
                return
            if msgs:
                for m in msgs:
                    yield m
                if idle_timeout is not None:
                    idle_until = time.monotonic() + idle_timeout
            elif idle_until is not None and time.monotonic() >= idle_until:
                return

    async def apoll(self, timeout: Optional[float] = None,
                    executor: Any = None) -> Optional[Message]:
        """``await consumer.apoll(timeout)``: :meth:`poll` run in an
        executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.poll, timeout)

    @property
    def closed(self) -> bool:
        return self._c.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        self._c.close()


class Consumer(_ConsumerBase):
    """Stream consumer: reads partitions in offset order.

    ``Consumer(bootstrap=None, group=None, **config)``

    Either ``subscribe(topics)`` as a member of the stream group ``group``
    (partitions are assigned by the broker and move between members), or
    ``assign()`` partitions yourself, with or without a group. Offsets are
    committed to the group with :meth:`commit`. Useful configuration:
    ``auto_offset_reset`` (``"latest"`` default or ``"earliest"``: where to
    start without a committed offset), ``enable_auto_commit``,
    ``session_timeout_ms``, ``fetch_max_bytes``.

    Messages of a stream consumer have ``attempts == failures == 0`` and no
    ack(): progress is the committed offset.
    """

    def __init__(self, bootstrap: Optional[str] = None,
                 group: Optional[str] = None, *,
                 topics: Optional[Iterable[str]] = None,
                 config: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> None:
        conf = _conf(bootstrap, config, kwargs)
        if group is not None:
            conf["group.id"] = group
        self.group = group
        self._reset = conf.get("auto.offset.reset", "latest")
        self._c = _sluice.Consumer(conf)
        if topics is not None:
            self.subscribe(topics)

    def subscribe(self, topics: Union[str, Iterable[str]]) -> None:
        """Join the stream group for ``topics`` (needs ``group``)."""
        if isinstance(topics, str):
            topics = [topics]
        if self.group is None:
            raise errors.InvalidArgumentError(
                "subscribe() needs a group: Consumer(bootstrap, group=...); "
                "without a group use assign()")
        self._c.subscribe(list(topics))

    def assign(self, partitions: Iterable[Union[TopicPartition, Tuple[str, int],
                                                Tuple[str, int, int]]]
               ) -> None:
        """Consume exactly these partitions: ``(topic, partition)`` or
        ``(topic, partition, offset)``; offset is an offset or
        :data:`OFFSET_BEGINNING`, :data:`OFFSET_END`, :data:`OFFSET_STORED`
        (the default with a group; without one, ``auto_offset_reset``
        decides: ``"latest"``, the default, is :data:`OFFSET_END`).
        With ``enable_auto_commit`` and a group, the positions of the
        partitions consumed until now are committed first, synchronously
        (as Kafka's ``assign()`` does), so whoever reads them next in the
        group starts there."""
        tps = []
        for tp in partitions:
            topic, part = tp[0], tp[1]
            off = tp[2] if len(tp) > 2 else None
            if off is None:
                off = self._default_offset()
            tps.append((topic, part, off))
        self._c.assign(tps)

    def assign_topic(self, topic: str, offset: Optional[int] = None) -> None:
        """Consume every partition of ``topic`` from ``offset`` (default as
        in :meth:`assign`)."""
        if offset is None:
            offset = self._default_offset()
        self._c.assign_topic(topic, offset)

    def _default_offset(self) -> int:
        if self.group is not None:
            return OFFSET_STORED
        return OFFSET_BEGINNING if self._reset == "earliest" else OFFSET_END

    def assignment(self) -> List[TopicPartition]:
        """Assigned partitions with their positions (next offset)."""
        return [TopicPartition(*t) for t in self._c.assignment()]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Move an assigned partition's position to ``offset`` (or an
        ``OFFSET_*`` constant)."""
        self._c.seek(topic, partition, offset)

    def seek_to_time(self, topic: str, partition: int, timestamp: int
                     ) -> None:
        """Move to the first record with timestamp >= ``timestamp`` (ms);
        partition -1: every assigned partition of the topic."""
        self._c.seek_time(topic, partition, timestamp)

    def offsets_for_times(self, query: Mapping[Tuple[str, int], int]
                          ) -> Dict[Tuple[str, int], int]:
        """``{(topic, partition): timestamp_ms}`` to ``{(topic, partition):
        offset}``: the first offset whose record timestamp is >= the
        timestamp (the log end if none)."""
        return {(t, p): self._c.offset_for_time(t, p, ts)
                for (t, p), ts in query.items()}

    def watermarks(self, topic: str, partition: int) -> Tuple[int, int]:
        """``(earliest stored offset, log end offset)``."""
        return self._c.watermarks(topic, partition)

    def commit(self, offsets: Union[None, Message,
                                    Iterable[TopicPartition]] = None
               ) -> None:
        """Commit to the group, synchronously: with no argument, the
        position of every assigned partition; with a :class:`Message`, the
        offset after it; or explicit ``(topic, partition, next_offset)``."""
        if offsets is None:
            self._c.commit()
        elif isinstance(offsets, Message):
            self._c.commit_offsets([(offsets.topic, offsets.partition,
                                     offsets.offset + 1)])
        else:
            self._c.commit_offsets([tuple(tp) for tp in offsets])

    def committed(self, topic: str, partition: int) -> int:
        """The group's committed offset for a partition (-1 if none)."""
        return self._c.committed(topic, partition)

    def auto_commit_failures(self) -> Tuple[int, str]:
        """``(count, last error message)`` of the auto-commits
        (``enable_auto_commit``) that failed. A failed auto-commit is sent
        again at the next poll (to the new coordinator after a failover),
        with the positions of then; one fenced by a rebalance is not."""
        return self._c.auto_commit_failures()

    def close(self) -> None:
        """With ``enable_auto_commit``, commit the positions first
        (synchronously, riding through a coordinator failover); then leave
        the group (if subscribed) and close. Idempotent."""
        self._c.close()


class QueueConsumer(_ConsumerBase):
    """Competing consumer of a queue group.

    ``QueueConsumer(bootstrap, topic, group, **config)``

    Every consumer of the same ``group`` on ``topic`` receives different
    messages. Each message is locked to this consumer until it is settled
    with :meth:`Message.ack`, :meth:`Message.nack` (redeliver, optionally
    after a delay) or :meth:`Message.reject` (to the dead-letter topic), or
    until its lock expires (then it is redelivered). ``msg.attempts`` and
    ``msg.failures`` count deliveries and failures.

    Settling is batched: ack/nack/reject return at once and go to the broker
    with the next poll, or on :meth:`flush`, which also reports the broker's
    verdict (e.g. :class:`LockExpiredError`). :meth:`close` flushes and
    closes the connection: the broker gives back every message still held,
    available again at once with ``attempts`` kept and no failure counted.

    ``prefetch``: at most this many messages held (received and not yet
    settled), as pika's ``basic_qos(prefetch_count=N)``: ``prefetch=1``
    hands out one message at a time. By default (None) the window adapts:
    it grows while this consumer keeps up and stays small while it is slow,
    so competing consumers share the work.

    A topic that does not exist yet is created by the first poll when the
    broker auto-creates topics (its default, as STOMP SUBSCRIBE and pika's
    ``queue_declare`` do); otherwise poll waits for it to be created and,
    when its timeout passes first, raises :class:`UnknownTopicError`
    saying so.

    Other configuration: ``queue_lock_ms`` (lock duration; 0 = the group's
    default), ``ack_batch_records``, ``ack_linger_ms``, ``queue_credits``
    (a fixed number of records per acquire instead of the adaptive window).

    ``group_config``: queue-group settings (``{"max_deliveries": 3,
    "key_ordered": True}``, see :meth:`Admin.configure_queue_group`) applied
    before the consumer starts, creating the group if missing. They are the
    group's, not this consumer's: they persist and apply to every consumer
    of the group.
    """

    def __init__(self, bootstrap: Optional[str], topic: str, group: str, *,
                 prefetch: Optional[int] = None,
                 config: Optional[Mapping[str, Any]] = None,
                 group_config: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> None:
        conf = _conf(bootstrap, config, kwargs)
        if prefetch is not None:
            if isinstance(prefetch, bool) or not isinstance(prefetch, int) \
                    or prefetch < 1:
                raise ValueError("prefetch must be an int >= 1 (or None for "
                                 "the adaptive window), not %r" % (prefetch,))
            conf["queue.credits"] = str(prefetch)
            conf["queue.max.unacked"] = str(prefetch)
        self.topic = topic
        self.group = group
        if group_config:
            admin = _sluice.Admin(conf)
            try:
                cfg = {k: ("true" if v is True else "false" if v is False
                           else str(v)) for k, v in group_config.items()}
                admin.queue_group_config(topic, group, 0, cfg)
            finally:
                admin.close()
        self._c = _sluice.QueueConsumer(topic, group, conf)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send pending acks/nacks/rejects and wait for the broker's
        answers; raises the first error (e.g. :class:`LockExpiredError` or
        :class:`NotAcquiredError`: the message may be redelivered)."""
        self._c.flush(_ms(timeout))

    @property
    def held(self) -> int:
        """Messages received and not yet settled."""
        return self._c.held()

    def close(self) -> None:
        """Flush pending settlements and close; the broker gives back the
        messages still held (attempts kept, no failure counted).
        Idempotent."""
        self._c.close()


# ---- admin -------------------------------------------------------------------

class Admin:
    """Topics, groups, lag and dead-letter topics.

    ``Admin(bootstrap=None, **config)``
    """

    def __init__(self, bootstrap: Optional[str] = None, *,
                 config: Optional[Mapping[str, Any]] = None,
                 **kwargs: Any) -> None:
        self._c = _sluice.Admin(_conf(bootstrap, config, kwargs))

    def create_topic(self, name: str, partitions: Optional[int] = None,
                     config: Optional[Mapping[str, Any]] = None) -> None:
        """Create a topic (``partitions`` None: the broker's default).
        ``config``: topic settings such as ``{"compact": "true"}`` or
        ``{"retention_ms": 3600000}``. Raises :class:`TopicExistsError`,
        :class:`InvalidTopicError`, :class:`InvalidConfigError`."""
        cfg = None
        if config:
            cfg = {k: ("true" if v is True else "false" if v is False
                       else str(v)) for k, v in config.items()}
        self._c.create_topic(name, partitions or 0, cfg)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and its data. Raises :class:`UnknownTopicError`."""
        self._c.delete_topic(name)

    def topics(self) -> List[TopicInfo]:
        """Every topic."""
        return [_topic_info(t) for t in self._c.list_topics()]

    def topic(self, name: str) -> TopicInfo:
        """One topic with its partitions' offsets and its configuration."""
        return _topic_info(self._c.describe_topic(name))

    def groups(self) -> List[GroupInfo]:
        """Every stream and queue group."""
        return [_group_info(g) for g in self._c.list_groups()]

    def group(self, name: str) -> GroupInfo:
        """One group: members, offsets, lag, in-flight, DLQ depth. Raises
        :class:`UnknownGroupError`."""
        return _group_info(self._c.describe_group(name))

    def lag(self, group: str) -> Dict[Tuple[str, int], int]:
        """``{(topic, partition): lag}`` of a group (log end minus the
        committed or start offset)."""
        return {(p.topic, p.partition): p.lag
                for p in self.group(group).partitions}

    def configure_queue_group(self, topic: str, group: str, *,
                              create: bool = True,
                              **settings: Any) -> Dict[str, str]:
        """Set queue-group settings and return the group's effective
        settings (all of them, as the broker reports them: strings such as
        ``{"max_deliveries": "3", "key_ordered": "1", ...}``; an empty
        ``dlq_topic`` means the default ``<topic>.DLQ``).

        ``settings`` are the keys of docs/groups.md: ``max_deliveries``,
        ``lock_ms``, ``backoff_initial_ms``, ``backoff_max_ms``,
        ``backoff_multiplier``, ``ttl_ms``, ``dlq_expired``, ``key_ordered``,
        ``max_inflight``, ``max_delayed``, ``start`` (``"earliest"`` or
        ``"latest"``), ``dlq_topic`` (``"-"``: none). Values may be ints,
        bools or strings. The group is created on ``topic`` with the
        broker's defaults if missing (``create=False``: raise
        :class:`UnknownGroupError` instead). All or nothing: an unknown key
        or a bad value raises :class:`InvalidConfigError` naming the key,
        and nothing changes. Without settings this only ensures the group
        exists."""
        cfg = {k: ("true" if v is True else "false" if v is False
                   else str(v)) for k, v in settings.items()}
        if not cfg and not create:
            return self.queue_group_config(topic, group)
        return {k: v for k, v in self._c.queue_group_config(
            topic, group, 0 if create else 1, cfg)
            if not k.startswith("stats.")}

    def queue_group_config(self, topic: str, group: str, *,
                           stats: bool = False) -> Dict[str, str]:
        """The effective settings of queue group ``group`` on ``topic``
        (see :meth:`configure_queue_group`); ``stats=True`` adds the
        broker-wide read-only counters (keys ``stats.*``). Raises
        :class:`UnknownGroupError` if the group does not exist."""
        return {k: v for k, v in self._c.queue_group_config(topic, group, 2)
                if stats or not k.startswith("stats.")}

    def dlqs(self, source_topic: Optional[str] = None) -> List[DLQInfo]:
        """Dead-letter topics (of ``source_topic`` only, or all)."""
        return [DLQInfo(*d) for d in self._c.dlq_list(source_topic)]

    def redrive(self, dlq_topic: str, to_topic: Optional[str] = None,
                rate: float = 0, reason: Optional[str] = None,
                max_records: Optional[int] = None) -> int:
        """Move dead-lettered records back to their original topic (or to
        ``to_topic``), at most ``rate`` records/s (0: unlimited), only
        those whose DLQ reason is ``reason`` (None: all), at most
        ``max_records``. Returns the number moved."""
        return self._c.dlq_redrive(dlq_topic, to_topic, float(rate), reason,
                                   -1 if max_records is None
                                   else max_records)

    # -- management verbs (the ADMIN api; docs/protocol.md 4.29) ----------

    def call(self, verb: str, **args: Any) -> Dict[str, Any]:
        """Run a management verb (``"queues"``, ``"group.reset"``, ...;
        see :c:func:`sluice_admin_call`) and return its JSON answer as a
        dict. A list value repeats the key (``config=["a=1", "b=2"]``)."""
        pairs: List[Tuple[str, str]] = []
        for k, v in args.items():
            for x in (v if isinstance(v, (list, tuple)) else [v]):
                pairs.append((k, "true" if x is True else "false"
                              if x is False else str(x)))
        result: Dict[str, Any] = json.loads(self._c.call(verb, pairs))
        return result

    def queues(self) -> List[Dict[str, Any]]:
        """Every queue group x topic: ``ready``, ``in_flight``,
        ``delayed``, ``consumers``, ``oldest_ready_age_ms``,
        ``dlq_pending``, ``dlq_total`` (like ``rabbitmqctl list_queues``)."""
        q: List[Dict[str, Any]] = self.call("queues")["queues"]
        return q

    def connections(self) -> List[Dict[str, Any]]:
        """Open client connections: ``id``, ``protocol``, ``listener``,
        ``peer``, ``user``, ``age_ms``, ``bytes_in``, ``bytes_out``,
        ``in_flight`` and the ``subscriptions`` (STOMP) or ``groups``
        (binary queue consumers) of each (like ``rabbitmqctl
        list_connections``)."""
        c: List[Dict[str, Any]] = self.call("connections")["connections"]
        return c

    def close_connection(self, conn_id: int, reason: str = "") -> None:
        """Close connection ``conn_id`` (an ``id`` from
        :meth:`connections`) now: what its consumers held is available
        again. Raises :class:`SluiceError` if it is not open."""
        if reason:
            self.call("connection.close", id=conn_id, reason=reason)
        else:
            self.call("connection.close", id=conn_id)

    def status(self) -> Dict[str, Any]:
        """Version, uptime, data directory, listeners and node."""
        return self.call("status")

    def version(self) -> str:
        """The broker's version."""
        return str(self.call("version")["version"])

    def purge_queue(self, topic: str, group: str) -> int:
        """Drop what queue group ``group`` has not consumed on ``topic``;
        returns how many records were dropped."""
        return int(self.call("queue.purge", topic=topic,
                             group=group)["purged"])

    def peek(self, topic: str, group: str,
             count: int = 10) -> List[Dict[str, Any]]:
        """The next ``count`` ready records of a queue group, without
        changing anything (no delivery counted, nothing locked)."""
        r: List[Dict[str, Any]] = self.call(
            "queue.peek", topic=topic, group=group, count=count)["records"]
        return r

    def delete_group(self, group: str) -> None:
        """Delete a queue group's state, or a stream group's offsets
        (:class:`SluiceError` with code BUSY while it has members)."""
        self.call("group.delete", group=group)

    def reset_group(self, group: str, topic: str, *,
                    to_earliest: bool = False, to_latest: bool = False,
                    to_offset: Optional[int] = None,
                    to_time: Optional[int] = None
                    ) -> Dict[Tuple[str, int], int]:
        """Move a queue or stream group on ``topic`` to the earliest or
        latest offset, an offset, or the first record at or after
        ``to_time`` (ms since the epoch). Returns ``{(topic, partition):
        offset}``."""
        chosen = [to_earliest, to_latest, to_offset is not None,
                  to_time is not None]
        if sum(1 for c in chosen if c) != 1:
            raise ValueError("give exactly one of to_earliest, to_latest, "
                             "to_offset, to_time")
        args: Dict[str, Any] = {"group": group, "topic": topic}
        if to_earliest:
            args["to"] = "earliest"
        elif to_latest:
            args["to"] = "latest"
        elif to_offset is not None:
            args["to"], args["value"] = "offset", to_offset
        else:
            args["to"], args["value"] = "time", to_time
        r = self.call("group.reset", **args)
        return {(topic, int(p["partition"])): int(p["offset"])
                for p in r["partitions"]}

    def alter_topic(self, name: str, **config: Any) -> Dict[str, str]:
        """Change per-topic settings (``retention_ms=3600000``; ``_`` in a
        key counts as ``-``; an empty value removes the override). Returns
        the topic's overrides after the change."""
        cfg = ["%s=%s" % (k.replace("_", "-"), "true" if v is True else
                          "false" if v is False else v)
               for k, v in config.items()]
        r: Dict[str, str] = self.call("topic.alter", topic=name,
                                      config=cfg)["configs"]
        return r

    def add_partitions(self, name: str, count: int) -> int:
        """Grow a topic to ``count`` partitions in total; returns it."""
        return int(self.call("topic.add_partitions", topic=name,
                             count=count)["partition_count"])

    def dlq_status(self, source_topic: Optional[str] = None
                   ) -> List[Dict[str, Any]]:
        """Dead-letter topics with ``pending`` (not yet redriven or
        purged) and ``total`` records."""
        args: Dict[str, Any] = {}
        if source_topic:
            args["topic"] = source_topic
        d: List[Dict[str, Any]] = self.call("dlq.list", **args)["dlqs"]
        return d

    def purge_dlq(self, dlq_topic: str) -> int:
        """Mark every pending record of a DLQ handled; returns how many."""
        return int(self.call("dlq.purge", dlq=dlq_topic)["purged"])

    @property
    def closed(self) -> bool:
        return self._c.closed

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> "Admin":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
