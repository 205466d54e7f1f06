"""gunicorn settings shared by every KeyLM service (and the provider simulator)."""

import math
import os
import resource
import shutil
import signal
import tempfile
from pathlib import Path

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
# Streams stay open for minutes; gevent workers heartbeat while they wait, so this only
# catches a worker that is truly stuck.
timeout = 120
# On SIGTERM a worker stops accepting, lets open streams run for DRAIN_SECONDS, then ends each
# with a retryable `error` event (shared/lifecycle.py). gunicorn ends what is left (idle keep-alive
# connections among it) a little later. The gateway's graceful time outlasts chat's drain, so the
# `error` event of a reply in flight still reaches the client when the whole suite stops at once.
drain_seconds = float(os.environ.get("DRAIN_SECONDS") or "20")
graceful_timeout = math.ceil(drain_seconds) + 2
# Longer than any client pool keeps an idle connection before reusing it: a connection the server
# closes just as a service sends a POST on it fails that POST, which is never retried.
keepalive = 75
# gunicorn 27 shares one control socket path between instances by default.
control_socket_disable = True
accesslog = None  # each service writes its own JSON request log
errorlog = "-"
loglevel = "warning"


def on_starting(server):
    # Each open stream takes two descriptors in the gateway and two in chat: the common soft limit
    # of 1024 would cap a worker near 500 streams, far below worker_connections.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    _prepare_metrics(server)


def _prepare_metrics(server):
    """With METRICS_PORT, every worker writes its metrics into a directory of this master's own
    (set before any worker imports prometheus_client), and the master serves their sum."""
    from shared.config import REPO_ROOT, metrics_port_from

    server.keylm_metrics_port = metrics_port_from(os.environ)
    if server.keylm_metrics_port is None:
        return
    # Under the var dir (not /tmp): a master that was killed outright leaves it where its data is.
    parent = Path(os.environ.get("KEYLM_VAR_DIR") or REPO_ROOT / "var") / "metrics"
    parent.mkdir(parents=True, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="master-", dir=parent)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    server.keylm_metrics_dir = directory


def when_ready(server):
    port = getattr(server, "keylm_metrics_port", None)
    if port is None or getattr(server, "keylm_metrics_served", False):
        return  # (a reload runs this hook again; the server from the first run goes on)
    server.keylm_metrics_served = True
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    # The host the service itself is bound to: loopback under `make run` and the tests, every
    # interface in a container (where only the service port is published).
    host = server.address[0][0] if server.address and isinstance(server.address[0], tuple) else "127.0.0.1"
    start_http_server(port, addr=host, registry=registry)
    server.log.info("metrics on %s:%s", host, port)


def child_exit(server, worker):
    if getattr(server, "keylm_metrics_port", None) is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    directory = getattr(server, "keylm_metrics_dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def post_worker_init(worker):
    from shared.lifecycle import DRAIN

    stop_accepting = worker.handle_exit

    def drain_then_stop(sig, frame):
        DRAIN.begin(drain_seconds)
        stop_accepting(sig, frame)

    worker.handle_exit = drain_then_stop
    signal.signal(signal.SIGTERM, drain_then_stop)


def post_fork(server, worker):
    # psycopg2 blocks the gevent loop unless it is told to wait cooperatively.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
