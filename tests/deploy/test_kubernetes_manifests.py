"""deploy/kubernetes: the production overlay renders, every object passes the Kubernetes schemas
(strict), each service gets only its own secrets, and the NetworkPolicies allow exactly the service
graph of docs/architecture.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from itertools import product

import kubernetes_validate
import pytest
import yaml

from shared.config import REQUIRED_SECRETS
from tests.conftest import REPO_ROOT, unavailable

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
SERVICES = ("gateway", "auth", "keys", "chat", "quota")
SERVICE_PORT = 8000
# What each process may find in its Secret: the secrets it requires, plus what it reads that may
# hold a password (database, Redis and mail URLs) and the optional secrets of its own.
ALLOWED_SECRETS = {
    "gateway": {*REQUIRED_SECRETS["gateway"], "REDIS_URL"},
    "auth": {*REQUIRED_SECRETS["auth"], "DATABASE_URL", "SMTP_URL"},
    "keys": {*REQUIRED_SECRETS["keys"], "APP_ENCRYPTION_KEY_PREVIOUS", "DATABASE_URL"},
    "chat": {*REQUIRED_SECRETS["chat"], "GROQ_API_KEY", "DATABASE_URL"},
    "quota": {*REQUIRED_SECRETS["quota"], "DATABASE_URL"},
    "migrate": {*REQUIRED_SECRETS["migrate"], "DATABASE_URL"},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """The production overlay rendered by `kubectl kustomize`, with example secrets filled in."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        unavailable("kubectl is not installed (make system-deps installs Debian's package)")
    tree = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, tree)
    for example in (tree / "production" / "secrets").glob("*.env.example"):
        filled = re.sub(
            r"^(\w+)=$", r"\1=test-value-0123456789abcdef0123456789abcdef", example.read_text(), flags=re.M
        )
        example.with_suffix("").write_text(filled)
    result = subprocess.run(
        [kubectl, "kustomize", str(tree / "production")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def workloads(objects: list[dict]) -> dict[str, dict]:
    """Each Deployment and the migration Job, by the name of what it runs (`keys`, `migrate`)."""
    return {
        o["metadata"]["name"].removeprefix("keylm-"): o for o in objects if o["kind"] in ("Deployment", "Job")
    }


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def secret_names_used(workload: dict) -> set[str]:
    spec = pod_spec(workload)
    names = set()
    for container in spec.get("initContainers", []) + spec["containers"]:
        names |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
        names |= {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
    names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    return names


def secret_keys_of(objects: list[dict], workload: dict) -> set[str]:
    secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
    keys: set[str] = set()
    for name in secret_names_used(workload):
        keys |= set(secrets[name].get("data", {})) | set(secrets[name].get("stringData", {}))
    return keys


def test_overlay_renders_every_part_of_the_deployment(rendered):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered}

    for name in SERVICES:
        assert ("Deployment", f"keylm-{name}") in kinds
        assert ("Service", name) in kinds
        assert ("PodDisruptionBudget", f"keylm-{name}") in kinds
    assert ("Job", "keylm-migrate") in kinds
    assert ("ConfigMap", "keylm-config") in kinds
    assert {n for k, n in kinds if k == "HorizontalPodAutoscaler"} == {"keylm-gateway", "keylm-chat"}
    assert ("Ingress", "keylm") in kinds
    assert all(o["metadata"].get("namespace") == "keylm" for o in rendered if o["kind"] != "Namespace")


def test_every_object_validates_against_the_kubernetes_schemas(rendered):
    version = kubernetes_validate.latest_version()
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_each_service_gets_only_its_own_secrets(rendered):
    running = workloads(rendered)
    assert set(running) == {*SERVICES, "migrate"}

    for name, workload in running.items():
        keys = secret_keys_of(rendered, workload)
        assert keys <= ALLOWED_SECRETS[name], f"{name} gets {keys - ALLOWED_SECRETS[name]}"
        assert set(REQUIRED_SECRETS[name]) <= keys, f"{name} could not start without {REQUIRED_SECRETS[name]}"
        # One Secret per service, shared with nobody: a later split of a value touches one file.
        assert len(secret_names_used(workload)) == 1


@pytest.mark.parametrize("secret", ["APP_ENCRYPTION_KEY", "APP_ENCRYPTION_KEY_PREVIOUS", "GROQ_API_KEY"])
def test_a_provider_or_vault_secret_reaches_one_service_only(rendered, secret):
    holders = {n for n, w in workloads(rendered).items() if secret in secret_keys_of(rendered, w)}

    assert holders == ({"chat"} if secret == "GROQ_API_KEY" else {"keys"})


def test_no_secret_value_is_in_the_config_map(rendered):
    (config,) = of_kind(rendered, "ConfigMap")
    every_secret = set().union(*ALLOWED_SECRETS.values())

    assert not set(config["data"]) & every_secret


def test_every_container_has_probes_limits_and_a_locked_down_context(rendered):
    (config,) = of_kind(rendered, "ConfigMap")
    drain = float(config["data"]["DRAIN_SECONDS"])
    for name, workload in workloads(rendered).items():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            for resource in ("cpu", "memory"):
                assert container["resources"]["requests"][resource], (name, container["name"])
                assert container["resources"]["limits"][resource], (name, container["name"])
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
        if workload["kind"] == "Deployment":
            (container,) = spec["containers"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz", name
            # The preStop pause, the drain time, then gunicorn's graceful timeout (2 s more), all
            # before the kubelet kills.
            pause = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
            assert spec["terminationGracePeriodSeconds"] > pause + drain + 2, name


def test_services_offer_a_named_metrics_port(rendered):
    for service in of_kind(rendered, "Service"):
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert ports["metrics"]["targetPort"] == "http", service["metadata"]["name"]


def test_ingress_reaches_only_the_gateway_and_lets_streams_run(rendered):
    (ingress,) = of_kind(rendered, "Ingress")
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    annotations = ingress["metadata"]["annotations"]

    assert backends == {"gateway"}
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600


# --- NetworkPolicies ------------------------------------------------------------------------------


def documented_service_graph() -> dict[str, set[str]]:
    """The `talks to` column of docs/architecture.md's service table: every service, and
    `providers` for the internet."""
    graph = {}
    row = re.compile(r"^\| `(\w+?)(?:_service)?` \| \d+ \| .* \| (.+?) \|$")
    for line in (REPO_ROOT / "docs/architecture.md").read_text().splitlines():
        if match := row.match(line):
            name, talks_to = match.groups()
            if talks_to == "every service":
                graph[name] = set(SERVICES) - {name}
            elif talks_to == "nobody":
                graph[name] = set()
            else:
                graph[name] = {re.sub(r"\s*\(.*\)", "", t).strip() for t in talks_to.split(",")}
    assert set(graph) == set(SERVICES), graph
    return graph


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression  # the only operator the manifests use
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels(objects: list[dict]) -> dict[str, dict[str, str]]:
    return {name: pod_spec_labels(w) for name, w in workloads(objects).items()}


def pod_spec_labels(workload: dict) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def port_allowed(rule: dict, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port, "http") for p in ports)


def peer_is_pod(peer: dict, labels: dict[str, str]) -> bool:
    """A peer naming pods of this namespace (no namespace or address selector) that match."""
    return set(peer) == {"podSelector"} and selects(peer["podSelector"], labels)


def allowed(policies: list[dict], direction: str, pod: dict[str, str], peer: dict[str, str]) -> bool:
    """Whether `pod` lets `peer` in (direction `ingress`) or may reach it (`egress`) on the service
    port: isolated by a policy of that type, the pod allows only what some rule names."""
    policy_type = direction.capitalize()
    applying = [
        p
        for p in policies
        if policy_type in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)
    ]
    if not applying:
        return True
    side = "from" if direction == "ingress" else "to"
    return any(
        port_allowed(rule, SERVICE_PORT) and any(peer_is_pod(p, peer) for p in rule.get(side, []))
        for policy in applying
        for rule in policy["spec"].get(direction, [])
    )


def test_network_policies_allow_exactly_the_documented_service_graph(rendered):
    policies = of_kind(rendered, "NetworkPolicy")
    labels = pod_labels(rendered)
    graph = documented_service_graph()

    for source, target in product(labels, SERVICES):
        expected = target in graph.get(source, set())
        reachable = allowed(policies, "egress", labels[source], labels[target]) and allowed(
            policies, "ingress", labels[target], labels[source]
        )
        assert reachable == expected, f"{source} -> {target}: {'allowed' if reachable else 'denied'}"


def test_every_pod_is_isolated_both_ways(rendered):
    policies = of_kind(rendered, "NetworkPolicy")
    for name, labels in pod_labels(rendered).items():
        for policy_type in ("Ingress", "Egress"):
            assert any(
                policy_type in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
                for p in policies
            ), f"{name} is not isolated for {policy_type}"


def external_peers(policies: list[dict], direction: str, labels: dict[str, str]) -> list[tuple[dict, list]]:
    """Rules letting `labels`' pod talk beyond this namespace's pods: (peer, ports)."""
    side = "from" if direction == "ingress" else "to"
    found = []
    for policy in policies:
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get(direction, []):
            for peer in rule.get(side, []):
                if set(peer) != {"podSelector"}:
                    found.append((peer, rule.get("ports", [])))
    return found


def test_only_the_ingress_controller_reaches_the_gateway_from_outside(rendered):
    policies = of_kind(rendered, "NetworkPolicy")
    for name, labels in pod_labels(rendered).items():
        peers = external_peers(policies, "ingress", labels)
        if name == "gateway":
            ((peer, _ports),) = peers
            assert peer["namespaceSelector"]["matchLabels"] == {
                "kubernetes.io/metadata.name": "ingress-nginx"
            }
        else:
            assert peers == [], f"{name} is reachable from outside the namespace: {peers}"


def test_only_the_documented_services_reach_the_internet(rendered):
    policies = of_kind(rendered, "NetworkPolicy")
    graph = documented_service_graph()
    for name, labels in pod_labels(rendered).items():
        wide = [
            (peer, ports)
            for peer, ports in external_peers(policies, "egress", labels)
            if "ipBlock" in peer and int(peer["ipBlock"]["cidr"].split("/")[1]) < 8
        ]
        if "providers" in graph.get(name, set()):
            assert wide and all(ports == [{"protocol": "TCP", "port": 443}] for _, ports in wide), name
        else:
            assert wide == [], f"{name} reaches the internet: {wide}"
