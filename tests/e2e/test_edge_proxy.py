"""The edge (nginx, edge/*.template) on loopback in front of a real suite: the repository's own
configuration, rendered for loopback ports the way edge/entrypoint.sh renders it in compose."""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import string
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from runner.suite import free_port
from tests.conftest import REPO_ROOT, unavailable, unique_email
from tests.e2e.conftest import launch_suite
from tests.e2e.sse import Event, iter_events

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
EDGE_DIR = REPO_ROOT / "edge"
HEADER_TIMEOUT = 10  # client_header_timeout in edge/keylm.conf.template
CONN_PER_IP = 6
LONG_REPLY = "[[sim:tokens=300]] [[sim:delay=100]] go"


def nginx_main(conf_dir: Path, server_conf: str) -> Path:
    """An nginx.conf keeping every file of this instance under `conf_dir`, with KeyLM's http-level
    configuration and the server file `server_conf`."""
    temp = {name: conf_dir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    main = conf_dir / "nginx.conf"
    main.write_text(
        f"""worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {conf_dir}/keylm.conf;
    include {conf_dir}/{server_conf};
}}
"""
    )
    return main


def render(conf_dir: Path, names: tuple[str, ...], **values: str) -> None:
    """Render templates as edge/entrypoint.sh does: only the ${KEYLM_...} names are substituted."""
    for name in names:
        template = string.Template((EDGE_DIR / f"{name}.template").read_text())
        (conf_dir / name).write_text(template.safe_substitute(values))


def test_https_configuration_is_valid_for_nginx(tmp_path):
    """The HTTPS server (KEYLM_DOMAIN set) with a certificate where certbot puts it."""
    if not Path(NGINX).exists():
        unavailable("nginx is not installed (make system-deps)")
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    domain = "keylm.example.com"
    live = tmp_path / "tls" / "live" / domain
    live.mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (live / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (live / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    render(
        tmp_path,
        ("keylm.conf", "keylm-site.conf", "https.conf"),
        KEYLM_GATEWAY="127.0.0.1:9",
        KEYLM_EDGE_CONN_PER_IP="64",
        KEYLM_DOMAIN=domain,
        KEYLM_EDGE_CONF_DIR=str(tmp_path),
        KEYLM_TLS_DIR=str(tmp_path / "tls"),
    )
    check = subprocess.run(
        [NGINX, "-t", "-c", str(nginx_main(tmp_path, "https.conf"))], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def render_edge(conf_dir: Path, edge_port: int, gateway_port: int) -> Path:
    """The plain-HTTP edge (no KEYLM_DOMAIN) in front of the suite's gateway, on loopback."""
    render(
        conf_dir,
        ("keylm.conf", "keylm-site.conf", "http.conf"),
        KEYLM_GATEWAY=f"127.0.0.1:{gateway_port}",
        KEYLM_EDGE_CONN_PER_IP=str(CONN_PER_IP),
        KEYLM_EDGE_PORT=f"127.0.0.1:{edge_port}",
        KEYLM_DOMAIN="",
        KEYLM_EDGE_CONF_DIR=str(conf_dir),
    )
    return nginx_main(conf_dir, "http.conf")


@pytest.fixture(scope="module")
def edge(request, tmp_path_factory):
    """(suite, edge URL): a suite on SQLite whose gateway trusts one hop, and nginx in front."""
    if not Path(NGINX).exists():
        unavailable("nginx is not installed (make system-deps)")
    edge_port = free_port()
    edge_url = f"http://127.0.0.1:{edge_port}"
    suite = launch_suite(
        tmp_path_factory, request, "sqlite", "edge", TRUSTED_PROXY_HOPS="1", CSRF_TRUSTED_ORIGINS=edge_url
    )
    conf_dir = tmp_path_factory.mktemp("edge-nginx")
    main = render_edge(conf_dir, edge_port, suite.ports["gateway"])
    check = subprocess.run([NGINX, "-t", "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [NGINX, "-c", str(main), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    request.addfinalizer(lambda: (process.terminate(), process.wait(timeout=10)))
    deadline = time.monotonic() + 10
    while True:
        try:
            if requests.get(edge_url + "/api/healthz", timeout=2).status_code in (200, 503):
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, (conf_dir / "error.log").read_text()
        time.sleep(0.1)
    return suite, edge_url


def session_for(base: str) -> requests.Session:
    http = requests.Session()
    http.headers["Origin"] = base
    response = http.post(
        base + "/api/auth/register",
        json={"email": unique_email("edge"), "password": "correct horse battery"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return http


def first_delta_seconds(http: requests.Session, base: str, thread_id: str) -> tuple[float, list]:
    started = time.perf_counter()
    response = http.post(
        f"{base}/api/threads/{thread_id}/messages",
        json={"content": "hello [[sim:tokens=20]]", "clientRequestId": uuid.uuid4().hex},
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    first = None
    events = []
    for event in iter_events(response):
        if isinstance(event, Event):
            if event.name == "delta" and first is None:
                first = time.perf_counter() - started
            events.append(event)
    assert first is not None, events
    return first, events


def test_register_and_streamed_chat_through_the_edge(edge):
    suite, edge_url = edge
    gateway_url = suite.url("gateway")
    via_edge = session_for(edge_url)
    direct = requests.Session()
    direct.headers["Origin"] = edge_url
    direct.cookies = via_edge.cookies  # the same user, straight to the gateway
    thread = via_edge.post(edge_url + "/api/threads", json={"mode": "free"}, timeout=30).json()["thread"]

    first, events = first_delta_seconds(via_edge, edge_url, thread["id"])
    assert events[-1].name == "done", events[-1]
    assert "".join(e.data["text"] for e in events if e.name == "delta")
    through, straight = [first], []
    for _ in range(4):
        through.append(first_delta_seconds(via_edge, edge_url, thread["id"])[0])
        straight.append(first_delta_seconds(direct, gateway_url, thread["id"])[0])
    added = (statistics.median(through) - statistics.median(straight)) * 1000
    print(
        f"\nfirst delta: {statistics.median(through) * 1000:.1f} ms through the edge, "
        f"{statistics.median(straight) * 1000:.1f} ms direct: the edge adds {added:.1f} ms (median of 5/4)"
    )


def test_metrics_health_and_readiness_are_not_reachable_through_the_edge(edge):
    _, edge_url = edge
    for path in ("/metrics", "/metrics/", "/healthz", "/readyz"):
        response = requests.get(edge_url + path, timeout=5)
        assert response.status_code == 404, path
        assert "keylm_" not in response.text and "process_" not in response.text


def test_the_gateway_sees_the_edge_address_not_a_forged_forwarded_for(edge):
    suite, edge_url = edge
    request_id = "edge-" + uuid.uuid4().hex
    response = requests.get(
        edge_url + "/api/auth/me",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Request-Id": request_id},
        timeout=5,
    )
    assert response.status_code == 401
    deadline = time.monotonic() + 5
    while True:
        lines = [
            json.loads(line)
            for line in suite.log_path("gateway").read_text().splitlines()
            if request_id in line and line.startswith("{")
        ]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines and all(line.get("client_ip") == "127.0.0.1" for line in lines), lines


def slow_header_client(edge_port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", edge_port), timeout=HEADER_TIMEOUT + 10)
    sock.sendall(b"GET /api/auth/me HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def test_slow_header_clients_are_cut_off_while_users_keep_getting_answers(edge):
    _, edge_url = edge
    edge_port = int(edge_url.rsplit(":", 1)[1])
    slow = [slow_header_client(edge_port) for _ in range(200)]
    opened = time.monotonic()
    closed_at: dict[int, float] = {}

    def dribble(index: int, sock: socket.socket) -> None:
        """One header line a second, never the blank line that ends them."""
        try:
            while time.monotonic() - opened < HEADER_TIMEOUT + 8:
                sock.sendall(f"X-Slow-{index}: {int(time.monotonic())}\r\n".encode())
                sock.settimeout(1.0)
                try:
                    if sock.recv(4096) == b"":
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        closed_at[index] = time.monotonic() - opened

    threads = [threading.Thread(target=dribble, args=(i, s), daemon=True) for i, s in enumerate(slow)]
    for thread in threads:
        thread.start()
    user = session_for(edge_url)
    slowest = 0.0
    while time.monotonic() - opened < HEADER_TIMEOUT + 2:
        started = time.perf_counter()
        response = user.get(edge_url + "/api/auth/me", timeout=5)
        slowest = max(slowest, time.perf_counter() - started)
        assert response.status_code == 200, response.text
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=HEADER_TIMEOUT + 15)
    for sock in slow:
        sock.close()
    assert len(closed_at) == len(slow)
    assert max(closed_at.values()) < HEADER_TIMEOUT + 5, sorted(closed_at.values())[-5:]
    assert slowest < 2.0, slowest


def test_connections_per_client_address_are_capped_at_the_edge(edge):
    _, edge_url = edge
    streams = []
    try:
        for _ in range(CONN_PER_IP // 2):
            http = session_for(edge_url)
            for _ in range(2):
                thread = http.post(edge_url + "/api/threads", json={"mode": "free"}, timeout=30).json()
                thread = thread["thread"]
                response = http.post(
                    f"{edge_url}/api/threads/{thread['id']}/messages",
                    json={
                        "content": "[[sim:tokens=300]] [[sim:delay=100]] go",
                        "clientRequestId": uuid.uuid4().hex,
                    },
                    stream=True,
                    timeout=30,
                )
                assert response.status_code == 200, response.text
                streams.append(response)
        refused = requests.get(edge_url + "/api/healthz", timeout=5)
        assert refused.status_code == 429
    finally:
        for response in streams:
            response.close()
    deadline = time.monotonic() + 10
    while requests.get(edge_url + "/api/healthz", timeout=5).status_code == 429:
        assert time.monotonic() < deadline
        time.sleep(0.2)
