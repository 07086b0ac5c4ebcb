"""TLS from Python (issue 16): tls=True, tls_ca=..., tls_cert/tls_key for
mutual TLS, verification on by default with errors naming the reason.
Certificates are made with the openssl CLI (tests/harness/sluice_tls.py);
the brokers are real sluiced processes on port 0."""
import os

import pytest

import sluice
import sluice_harness
from sluice_tls import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(str(tmp_path_factory.mktemp("pki")))
    p.srv = p.server("server")
    p.expired = p.server("expired", days=-1)
    p.alice = p.client("alice")
    return p


def start(tmp_path_factory, cert, key, extra=()):
    b = sluice_harness.Broker(
        data_dir=str(tmp_path_factory.mktemp("data")),
        args=["--tls-listen", "127.0.0.1:0", "--tls-cert", cert,
              "--tls-key", key] + list(extra))
    b.start()
    return b


@pytest.fixture(scope="module")
def tls_broker(bin_dir, pki, tmp_path_factory):
    os.environ["SLUICE_BIN_DIR"] = bin_dir
    brokers = []

    def make(cert_key, extra=()):
        b = start(tmp_path_factory, *cert_key, extra)
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        rc = b.stop()
        b.cleanup()
        assert rc == 0, b.log()


def addr(b):
    return "localhost:%d" % b.tls_addr[1]


def test_produce_and_consume_over_tls(tls_broker, pki, topic):
    b = tls_broker(pki.srv)
    with sluice.Admin(addr(b), tls=True, tls_ca=pki.ca) as a:
        a.create_topic(topic, partitions=1)
    with sluice.Producer(addr(b), tls=True, tls_ca=pki.ca) as p:
        for i in range(200):
            p.send(topic, b"m%03d" % i)
        p.flush()
    with sluice.Consumer(addr(b), tls=True, tls_ca=pki.ca,
                         auto_offset_reset="earliest") as c:
        c.assign([sluice.TopicPartition(topic, 0, sluice.OFFSET_BEGINNING)])
        got = []
        while len(got) < 200:
            batch = c.consume(200, timeout=10)
            assert batch, "got %d of 200" % len(got)
            got += [m.value for m in batch]
    assert got == [b"m%03d" % i for i in range(200)]
    with sluice.QueueConsumer(addr(b), topic, "workers", tls=True,
                              tls_ca=pki.ca) as q:
        m = q.poll(timeout=10)
        assert m is not None and m.value == b"m000"
        m.ack()


def test_verification_errors_name_the_reason(tls_broker, pki, topic):
    b = tls_broker(pki.srv)
    # verification is on by default: the test CA is not the system's
    with pytest.raises(sluice.DisconnectedError,
                       match="certificate is untrusted"):
        with sluice.Admin(addr(b), tls=True) as a:
            a.topics()
    exp = tls_broker(pki.expired)
    with pytest.raises(sluice.DisconnectedError,
                       match="certificate has expired"):
        with sluice.Admin(addr(exp), tls=True, tls_ca=pki.ca) as a:
            a.topics()
    other = tls_broker(pki.server("otherhost", host="broker.example",
                                  ip=None))
    with pytest.raises(sluice.DisconnectedError, match="wrong host"):
        with sluice.Admin(addr(other), tls=True, tls_ca=pki.ca) as a:
            a.topics()
    # turned off on purpose, it connects (never in production)
    with sluice.Admin(addr(other), tls=True, tls_verify=False) as a:
        a.topics()
    # plaintext to the TLS port
    with pytest.raises(sluice.DisconnectedError, match="a TLS port"):
        with sluice.Admin(addr(b)) as a:
            a.topics()


def test_mutual_tls(tls_broker, pki, topic):
    b = tls_broker(pki.srv, ["--tls-ca", pki.ca, "--tls-client-auth",
                             "require"])
    with pytest.raises(sluice.DisconnectedError,
                       match="requires a client certificate"):
        with sluice.Admin(addr(b), tls=True, tls_ca=pki.ca) as a:
            a.topics()
    with sluice.Admin(addr(b), tls=True, tls_ca=pki.ca,
                      tls_cert=pki.alice[0], tls_key=pki.alice[1]) as a:
        a.create_topic(topic, partitions=1)
        assert topic in [t.name for t in a.topics()]
