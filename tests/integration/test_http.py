"""The HTTP listener: /metrics (parsed with prometheus_client), /healthz,
/readyz, the JSON management API, and the curl session of docs/http-api.md
run line by line as written (against this test's broker)."""
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from sluice_harness import bin_dir

SRC = os.environ.get("SLUICE_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")


def http(broker, method, path, data=None):
    url = "http://%s:%d%s" % (broker.http_addr + (path,))
    body = urllib.parse.urlencode(data, doseq=True).encode() \
        if data is not None else None
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def api(broker, method, path, data=None, status=200):
    code, ctype, body = http(broker, method, path, data)
    assert code == status, (method, path, code, body)
    assert ctype == "application/json"
    return json.loads(body)


def cli(broker, *args, stdin=None):
    p = subprocess.run([os.path.join(bin_dir(), "sluice"), "-b",
                        "%s:%d" % broker.binary_addr] + list(args),
                       input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def metrics(broker):
    code, ctype, body = http(broker, "GET", "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_ready_line_health_and_readiness(broker):
    assert "http=%s:%d" % broker.http_addr in broker.ready_line
    assert http(broker, "GET", "/healthz")[::2] == (200, b"ok\n")
    assert http(broker, "GET", "/readyz")[::2] == (200, b"ready\n")
    assert http(broker, "GET", "/nosuch")[0] == 404


def test_metrics_follow_traffic(broker):
    cli(broker, "topic", "create", "m1", "--partitions", "2")
    cli(broker, "produce", "m1", "--partition", "1",
        stdin=b"".join(b"%d\n" % i for i in range(7)))
    cli(broker, "group", "config", "mw", "--topic", "m1", "max_deliveries=2")
    assert cli(broker, "queue", "consume", "m1", "--group", "mw",
               "--count", "3").count(b"\n") == 3
    m = metrics(broker)
    tp = (("partition", "1"), ("topic", "m1"))
    assert m[("sluice_partition_end_offset", tp)] == 7
    assert m[("sluice_partition_records_in_total", tp)] == 7
    assert m[("sluice_partition_size_bytes", tp)] > 0
    assert m[("sluice_partition_end_offset",
              (("partition", "0"), ("topic", "m1")))] == 0
    g = (("group", "mw"), ("topic", "m1"))
    assert m[("sluice_queue_ready_records", g)] == 4
    assert m[("sluice_queue_in_flight_records", g)] == 0
    assert m[("sluice_queue_consumers", g)] == 0
    assert m[("sluice_queue_dead_lettered_records", g)] == 0
    assert m[("sluice_queue_acks_total", ())] >= 3
    assert m[("sluice_requests_total", (("api", "PRODUCE"),))] >= 1
    assert m[("sluice_fsync_duration_seconds_count", ())] >= 1
    assert m[("sluice_up", ())] == 1
    assert m[("sluice_process_open_fds", ())] > 0


def test_topic_routes_and_errors(broker):
    t = api(broker, "POST", "/api/topics",
            {"topic": "h1", "partitions": "2",
             "config": ["retention-ms=60000"]})
    assert t["name"] == "h1" and t["partition_count"] == 2
    assert t["configs"] == {"retention-ms": "60000"}
    assert "h1" in [x["name"] for x in api(broker, "GET",
                                           "/api/topics")["topics"]]
    e = api(broker, "POST", "/api/topics", {"topic": "h1"}, status=409)
    assert e["error"] == "TOPIC_EXISTS"
    e = api(broker, "GET", "/api/topics/nosuch", status=404)
    assert e["error"] == "UNKNOWN_TOPIC" and "nosuch" in e["message"]
    e = api(broker, "POST", "/api/topics/h1/config",
            {"config": "retention-ms=soon"}, status=400)
    assert "retention-ms" in e["message"]
    t = api(broker, "POST", "/api/topics/h1/partitions", {"count": "3"})
    assert t["partition_count"] == 3
    e = api(broker, "POST", "/api/topics/h1/partitions", {"count": "x"},
            status=400)
    assert "count" in e["message"]
    assert http(broker, "DELETE", "/api/queues")[0] == 405
    assert http(broker, "PUT", "/api/topics")[0] == 501  # evhttp refuses
    assert api(broker, "DELETE", "/api/topics/h1") == {"deleted": "h1"}
    api(broker, "GET", "/api/topics/h1", status=404)
    # any verb through /api/admin/{verb}, as the binary ADMIN api takes it
    assert api(broker, "GET", "/api/admin/version")["version"]


def test_queue_and_dlq_routes(broker):
    cli(broker, "topic", "create", "h2", "--partitions", "1")
    cli(broker, "produce", "h2", stdin=b"a\nb\nc\nd\n")
    cli(broker, "group", "config", "hw", "--topic", "h2", "max_deliveries=3")
    q = [r for r in api(broker, "GET", "/api/queues")["queues"]
         if r["topic"] == "h2"]
    assert [(r["group"], r["ready"], r["in_flight"]) for r in q] == \
        [("hw", 4, 0)]
    p = api(broker, "GET", "/api/queues/h2/hw/peek?count=2")
    assert [r["value"] for r in p["records"]] == ["a", "b"]
    # two records dead-lettered (rejected) by the C test client
    exe = os.path.join(bin_dir(), "test_client_integration")
    r = subprocess.run([exe, "reject", "%s:%d" % broker.binary_addr, "h2",
                        "hw", "2"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    d = [x for x in api(broker, "GET", "/api/dlqs")["dlqs"]
         if x["dlq_topic"] == "h2.DLQ"]
    assert [(x["pending"], x["total"]) for x in d] == [(2, 2)]
    show = api(broker, "GET", "/api/dlqs/h2.DLQ")
    assert [x["value"] for x in show["records"]] == ["a", "b"]
    assert show["records"][0]["headers"]["dlq.reason"] == "rejected"
    assert api(broker, "POST", "/api/dlqs/h2.DLQ/redrive",
               {"max": "1"})["moved"] == 1
    d = [x for x in api(broker, "GET", "/api/dlqs?topic=h2")["dlqs"]]
    assert [(x["pending"], x["total"]) for x in d] == [(1, 2)]
    assert api(broker, "POST", "/api/dlqs/h2.DLQ/purge")["purged"] == 1
    g = api(broker, "GET", "/api/groups/hw")
    assert g["kind"] == "queue" and g["dlq_pending"] == 0
    assert api(broker, "POST", "/api/queues/h2/hw/purge")["purged"] == 3
    r = api(broker, "POST", "/api/groups/hw/reset",
            {"topic": "h2", "to": "earliest"})
    assert r["partitions"] == [{"partition": 0, "offset": 0}]
    e = api(broker, "POST", "/api/groups/hw/reset",
            {"topic": "h2", "to": "sometime"}, status=400)
    assert "to" in e["message"]
    assert api(broker, "DELETE", "/api/groups/hw") == {"deleted": "hw"}
    api(broker, "GET", "/api/groups/hw", status=404)


def session_lines():
    """Every line of the ```sh blocks of docs/http-api.md's session."""
    text = open(os.path.join(SRC, "docs", "http-api.md")).read()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines += [l for l in block.splitlines() if l.strip()]
    return lines


def test_docs_curl_session_runs_as_written(broker):
    lines = session_lines()
    assert sum(1 for l in lines if l.startswith("curl ")) >= 15
    host = "%s:%d" % broker.http_addr
    env = dict(os.environ, PATH=bin_dir() + ":" + os.environ["PATH"],
               SLUICE_BOOTSTRAP="%s:%d" % broker.binary_addr)
    rejected = False
    for line in lines:
        if "/api/dlqs" in line and not rejected:
            # the doc's dead letters: two more payments, rejected
            cli(broker, "produce", "payments", stdin=b"p4\np5\n")
            exe = os.path.join(bin_dir(), "test_client_integration")
            r = subprocess.run([exe, "reject", "%s:%d" % broker.binary_addr,
                                "payments", "billing", "2"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            assert r.returncode == 0, r.stderr.decode()
            rejected = True
        cmd = line.replace("127.0.0.1:7480", host)
        if cmd.startswith("curl "):
            cmd = "curl --fail-with-body " + cmd[len("curl "):]
        p = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd],
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, (line, p.stdout, p.stderr)
        if cmd.startswith("curl ") and "/metrics" not in cmd and \
                "z " not in cmd + " ":
            json.loads(p.stdout)  # every API answer is JSON
