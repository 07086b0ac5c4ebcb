"""The reference brokers, run beside sluiced for the side-by-side suite
(test_stomp_peers.py): RabbitMQ 3.10 (rabbitmq_stomp, rabbitmq_web_stomp)
and ActiveMQ 5.17, both from Debian's packages (scripts/deps.sh).

Each runs as a child process of the test, in a scratch directory, on
loopback ports the test chooses, and is stopped by pid:

- The ports cannot be port 0 (neither broker reports what it bound), so
  they are reserved as tests/cluster does: free ports below the kernel's
  ephemeral range, bound and released just before the start. If another
  process takes one in that window the broker exits early, and start()
  tries again on new ports.
- RabbitMQ needs Erlang's port mapper (epmd): we start our own, in the
  foreground on a port of ours (ERL_EPMD_PORT), so nothing is left behind
  as a daemon and a system RabbitMQ on 4369/5672/61613 is not disturbed.
  Ready = "Server startup complete" in its log (it logs to stdout, which
  goes to a file that we poll with a deadline).
- ActiveMQ: a generated activemq.xml with one STOMP connector (Debian's
  package has no WebSocket transport: no Jetty) and prioritizedMessages
  on queues. Ready = a STOMP CONNECT
  answered with CONNECTED, polled with a deadline.

Both take seconds to start, so the suite starts each once per module
(and both at the same time).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import sluice_harness  # noqa: E402

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
ACTIVEMQ_JAR = "/usr/share/activemq/bin/activemq.jar"
START_TIMEOUT = 120.0  # seconds: two JVM/BEAM starts on 2 busy cores


reserve_ports = sluice_harness.reserve_ports


def _stop_pid(proc, timeout=60):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _stomp_connects(port, host="/"):
    """True when a STOMP CONNECT on port is answered with CONNECTED."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:%s\n"
                      b"login:guest\npasscode:guest\n\n\0" % host.encode())
            buf = b""
            while b"\0" not in buf:
                d = s.recv(4096)
                if not d:
                    return False
                buf += d
            s.sendall(b"DISCONNECT\n\n\0")
            return buf.lstrip(b"\r\n").startswith(b"CONNECTED")
    except OSError:
        return False


class Peer:
    name = "?"
    ws_port = None  # STOMP over WebSocket, when the broker has it

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-peer-%s-" % self.name)
        self.proc = None
        self.stomp_port = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "out.txt"), "rb") as f:
                return f.read()[-8000:].decode(errors="replace")
        except OSError:
            return ""

    def _spawn(self):
        raise NotImplementedError

    def _ready(self):
        raise NotImplementedError

    def start(self):
        """Start the process (returns at once); wait() until it serves."""
        self._spawn()
        self.deadline = time.monotonic() + START_TIMEOUT
        return self

    def wait(self, attempts=3):
        while True:
            while True:
                if self._ready():
                    return self
                if self.proc.poll() is not None:
                    break  # exited: a port was taken, try others
                if time.monotonic() > self.deadline:
                    self.stop()
                    raise RuntimeError("%s did not start within %ds:\n%s" %
                                       (self.name, START_TIMEOUT, self.log()))
                time.sleep(0.2)  # polling the log/port with a deadline
            attempts -= 1
            log = self.log()
            self.stop()
            if attempts == 0:
                raise RuntimeError("%s exited at start:\n%s" % (self.name, log))
            self.start()

    def stop(self):
        _stop_pid(self.proc)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RabbitMQ(Peer):
    name = "rabbitmq"

    def __init__(self):
        super().__init__()
        self.epmd = None

    def _spawn(self):
        epmd_port, dist, stomp, ws = reserve_ports(4)
        self.stomp_port, self.ws_port = stomp, ws
        d = self.dir
        shutil.rmtree(os.path.join(d, "mnesia"), ignore_errors=True)
        with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
            f.write("listeners.tcp = none\n"  # no AMQP: STOMP only
                    "stomp.listeners.tcp.1 = 127.0.0.1:%d\n"
                    "web_stomp.tcp.ip = 127.0.0.1\n"
                    "web_stomp.tcp.port = %d\n"
                    "log.console = true\nlog.file = false\n" % (stomp, ws))
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_stomp,rabbitmq_web_stomp].\n")
        env = dict(os.environ)
        env.update({
            "HOME": d,  # the Erlang cookie
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": "sluicetest%d@localhost" % os.getpid(),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(d, "plugins-expand"),
            "RABBITMQ_FEATURE_FLAGS_FILE": os.path.join(d, "feature_flags"),
            "RABBITMQ_PID_FILE": os.path.join(d, "pid"),
            "RABBITMQ_LOGS": "-",
        })
        out = open(os.path.join(d, "out.txt"), "wb")
        # our own port mapper, in the foreground, stopped by pid
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
            stdout=out, stderr=out, env=env)
        # the wrapper script traps SIGTERM and stops the VM it started
        self.proc = subprocess.Popen([RABBITMQ_SERVER], stdout=out,
                                     stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        out.close()

    def _ready(self):
        return "Server startup complete" in self.log()

    def stop(self):
        super().stop()
        _stop_pid(self.epmd)
        self.epmd = None


ACTIVEMQ_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
  http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core
  http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false"
          brokerName="sluicetest" dataDirectory="%(dir)s/data"
          schedulerSupport="false">
    <destinationPolicy><policyMap><policyEntries>
      <!-- priorities on queues (test_priority) -->
      <policyEntry queue=">" prioritizedMessages="true"/>
    </policyEntries></policyMap></destinationPolicy>
    <persistenceAdapter><kahaDB directory="%(dir)s/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp+nio://127.0.0.1:%(stomp)d"/>
    </transportConnectors>
  </broker>
</beans>
"""

ACTIVEMQ_LOG4J = """log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d %-5p %c{1} %m%n
"""


class ActiveMQ(Peer):
    name = "activemq"

    def _spawn(self):
        (self.stomp_port,) = reserve_ports(1)
        d = self.dir
        conf = os.path.join(d, "conf")
        shutil.rmtree(os.path.join(d, "data"), ignore_errors=True)
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "activemq.xml"), "w") as f:
            f.write(ACTIVEMQ_XML % {"dir": d, "stomp": self.stomp_port})
        with open(os.path.join(conf, "log4j.properties"), "w") as f:
            f.write(ACTIVEMQ_LOG4J)
        out = open(os.path.join(d, "out.txt"), "wb")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.net.preferIPv4Stack=true",
             "-Dlog4j.configuration=file:" + os.path.join(conf, "log4j.properties"),
             "-Dactivemq.base=" + d, "-Dactivemq.home=/usr/share/activemq",
             "-Dactivemq.conf=" + conf, "-Dactivemq.data=" + os.path.join(d, "data"),
             "-jar", ACTIVEMQ_JAR, "start",
             "xbean:file:" + os.path.join(conf, "activemq.xml")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=d)
        out.close()

    def _ready(self):
        return _stomp_connects(self.stomp_port)
