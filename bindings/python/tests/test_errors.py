"""Broker and client errors surface as SluiceError subclasses."""

import socket

import pytest

import sluice
from sluice import errors


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_hierarchy_and_code_mapping():
    assert issubclass(sluice.UnknownTopicError, sluice.SluiceError)
    assert issubclass(sluice.SluiceTimeoutError, TimeoutError)
    assert issubclass(sluice.DisconnectedError, ConnectionError)
    assert issubclass(sluice.InvalidTopicError, sluice.InvalidArgumentError)
    assert issubclass(sluice.InvalidArgumentError, ValueError)
    for code in range(2, 40):
        e = errors.error_from_code(code, "m")
        assert isinstance(e, sluice.SluiceError)
        assert e.code == code and str(e) == "m"
        assert e.name == sluice._sluice.errname(code)
    e = errors.error_from_code(10000 + 28, "disk full")
    assert isinstance(e, OSError) and e.errno == 28 and e.name == "ENOSPC"
    assert sluice.strerror(7) == "unknown topic"


def test_idempotence_and_epoch_error_classes():
    """Codes 35-39 (protocol/err.h) have their own classes, exported from
    the package, each a SluiceError with the C library's name."""
    want = {35: sluice.OutOfOrderSequenceError,
            36: sluice.ProducerFencedError,
            37: sluice.DuplicateSequenceError,
            38: sluice.FencedLeaderEpochError,
            39: sluice.UnknownLeaderEpochError,
            41: sluice.UnknownProducerIdError}
    for code, cls in want.items():
        e = errors.error_from_code(code, "why")
        assert type(e) is cls
        assert isinstance(e, sluice.SluiceError)
        assert (e.code, e.message, str(e)) == (code, "why", "why")
        assert e.name == cls.name == sluice._sluice.errname(code)
        assert cls.__name__ in sluice.__all__
        assert sluice.strerror(code) not in ("", "unknown error code")
    with pytest.raises(sluice.ProducerFencedError):
        raise errors.error_from_code(36)


def test_connection_refused_is_disconnected_error():
    port = free_port()
    with pytest.raises(sluice.SluiceError) as ei:
        sluice.Producer("127.0.0.1:%d" % port, connect_timeout_ms=2000)
    assert isinstance(ei.value, (sluice.DisconnectedError, OSError))
    assert str(port) in str(ei.value)


def test_bad_configuration(bootstrap):
    with pytest.raises(sluice.InvalidConfigError) as ei:
        sluice.Producer(bootstrap, no_such_setting=1)
    assert "no.such.setting" in str(ei.value)
    with pytest.raises(sluice.InvalidConfigError) as ei:
        sluice.Producer(bootstrap, acks="sometimes")
    assert "sometimes" in str(ei.value) or "acks" in str(ei.value)


def test_topic_errors(bootstrap, admin, topic):
    admin.create_topic(topic, partitions=2)
    with pytest.raises(sluice.TopicExistsError) as ei:
        admin.create_topic(topic, partitions=2)
    assert topic in str(ei.value)
    with pytest.raises(sluice.InvalidTopicError):
        admin.create_topic("bad/name with spaces")
    with pytest.raises(sluice.UnknownTopicError):
        admin.topic(topic + "-missing")
    with pytest.raises(sluice.UnknownTopicError):
        admin.delete_topic(topic + "-missing")
    with sluice.Producer(bootstrap) as p:
        with pytest.raises(sluice.UnknownPartitionError) as ei:
            p.send(topic, b"x", partition=7)
        assert topic in str(ei.value)
        with pytest.raises(sluice.InvalidTopicError):
            p.send("bad topic!", b"x")


def test_unknown_group(admin):
    with pytest.raises(sluice.UnknownGroupError):
        admin.group("no-such-group-anywhere")


def test_use_after_close(bootstrap, topic):
    p = sluice.Producer(bootstrap)
    p.close()
    p.close()  # idempotent
    with pytest.raises(sluice.ClosedError):
        p.send(topic, b"x")
    c = sluice.Consumer(bootstrap)
    c.close()
    with pytest.raises(sluice.ClosedError):
        c.poll(0)
    a = sluice.Admin(bootstrap)
    a.close()
    with pytest.raises(sluice.ClosedError):
        a.topics()


def test_settling_errors(bootstrap, topic):
    with sluice.Producer(bootstrap) as p:
        p.send(topic, b"x").result(timeout=30)
    with sluice.Consumer(bootstrap) as c:
        c.assign([(topic, 0, sluice.OFFSET_BEGINNING)])
        m = c.poll(timeout=10)
        with pytest.raises(sluice.InvalidArgumentError) as ei:
            m.ack()  # stream messages are not acked
        assert "commit" in str(ei.value)
    with sluice.QueueConsumer(bootstrap, topic, "g") as q:
        m = q.poll(timeout=10)
        m.ack()
        with pytest.raises(sluice.InvalidArgumentError) as ei:
            m.nack()
        assert "already settled" in str(ei.value)
        with pytest.raises(ValueError):
            m.nack(delay=-1)


def test_bad_arguments_are_type_errors(bootstrap, topic):
    with sluice.Producer(bootstrap) as p:
        with pytest.raises(TypeError):
            p.send(topic, 12345)
        with pytest.raises(TypeError):
            p.send(topic, b"x", headers=[("a",)])
        with pytest.raises(TypeError):
            p.send(topic, b"x", headers=[(1, b"v")])
        with pytest.raises(TypeError):
            p.send(topic, b"x", headers={"a": 3})


def test_subscribe_without_group(bootstrap):
    with sluice.Consumer(bootstrap) as c:
        with pytest.raises(sluice.InvalidArgumentError):
            c.subscribe("t")



def test_broker_loss_fails_futures_after_delivery_timeout(bin_dir, tmp_path):
    """A record whose broker stays away longer than delivery_timeout_ms
    fails through its future and callback (DisconnectedError naming the
    topic); after a restart on the same address the same producer
    delivers again."""
    import sluice_harness
    b = sluice_harness.Broker(data_dir=str(tmp_path / "data"))
    b.start()
    try:
        host, port = b.binary_addr
        bs = "%s:%d" % (host, port)
        errs = []
        p = sluice.Producer(bs, request_timeout_ms=3000, linger_ms=50,
                            delivery_timeout_ms=1000,
                            on_delivery=lambda e, m: errs.append(e))
        assert p.send("t", b"1").result(timeout=10).offset == 0
        f = p.send("t", b"2")
        b.kill9()
        try:
            p.flush(timeout=15)
        except sluice.SluiceTimeoutError:
            pass
        assert isinstance(f.exception(timeout=15), sluice.DisconnectedError)
        assert "'t'" in str(f.exception())
        with pytest.raises(sluice.DisconnectedError):
            f.result()
        assert errs[0] is None and isinstance(errs[1],
                                              sluice.DisconnectedError)
        # same data directory, same port (the one the kernel gave us)
        b.start(extra=["--listen", bs])
        assert b.binary_addr == (host, port)
        m = p.send("t", b"3").result(timeout=30)
        assert m.offset >= 1  # record 1 survived the kill (it was durable)
        p.close()
    finally:
        b.cleanup()


def test_send_after_close_leaves_no_pending_future(bootstrap, topic):
    p = sluice.Producer(bootstrap)
    p.close()
    for _ in range(3):
        with pytest.raises(sluice.ClosedError):
            p.send(topic, b"x")
    assert p._c.pending_futures() == 0
