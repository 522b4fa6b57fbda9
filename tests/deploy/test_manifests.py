"""The deployment files under deploy/: parsed with PyYAML (there is no Docker engine or cluster
here) and checked for the properties operations rely on: one image, probes on the right ports,
resource limits, settings that pass the production validator, only the gateway exposed, no
secret values committed, and every ``WANGBAN_*`` name a real setting."""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.production_keys import production_keys
from wangban.dbroles import password_variable, runtime_role
from wangban.settings import SERVICE_NAMES, ConfigurationError, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "compose" / "wangban.env.example"
POSTGRES_ENV_EXAMPLE = DEPLOY / "compose" / "postgres.env.example"
BASE = DEPLOY / "k8s" / "base"
MIGRATE = DEPLOY / "k8s" / "migrate"
PRODUCTION = DEPLOY / "k8s" / "overlays" / "production"
PRODUCTION_MIGRATE = DEPLOY / "k8s" / "overlays" / "production-migrate"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
DB_LOGINS_EXAMPLE = BASE / "database-logins.example.yaml"
"""One Secret per service with its own database login (examples, never applied by kustomize)."""

PORTS = {name: Settings().port_of(name) for name in SERVICE_NAMES}
METRICS_PORT = 9100
"""Where every pod serves /metrics (``WANGBAN_METRICS_PORT``): never on its service port."""
COMPOSE_IMAGE = "wangban:0.1.0"
K8S_IMAGE = "wangban:0.1.0"
SECRET_NAME = "wangban-secrets"
CONFIG_NAME = "wangban-config"
HPA_SERVICES = {"gateway", "intake", "approval"}
PLACEHOLDER = "change-me"
# Settings whose value is a secret: committed files may only hold placeholders for them.
SECRET_SETTINGS = {
    f"WANGBAN_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if "SecretStr" in repr(field.annotation)
}
WANGBAN_NAME = re.compile(r"\bWANGBAN_[A-Z0-9_]*[A-Z0-9]")


# --- helpers ---------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        assert key not in values, f"{path.name}: {key} set twice"
        values[key] = value
    return values


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a process with exactly this environment would read them."""
    import os

    for key in list(os.environ):
        if key.startswith("WANGBAN_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("WANGBAN_"):
            monkeypatch.setenv(key, value)
    return Settings()


def _with_generated_keys(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``env`` with its key placeholders replaced by generated keys, as an operator must (the
    examples' comments say how); first checks that production refuses each placeholder."""
    with pytest.raises(ConfigurationError) as refused:
        _settings_from(env, monkeypatch)
    keys = {f"WANGBAN_{name.upper()}": value for name, value in production_keys().items()}
    assert {"WANGBAN_INTERNAL_TOKEN_KEY", "WANGBAN_BLIND_INDEX_KEY"} <= set(env) & set(keys)
    for name in set(env) & set(keys):
        placeholder = rf"{name}(\[\w+\])? still holds the example placeholder"
        assert re.search(placeholder, str(refused.value))
    generated = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in keys.items()}
    return {**env, **generated, "WANGBAN_FIELD_ENCRYPTION_ACTIVE_KEY": "k1"}


def _settings_fields() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def _dockerfile_stages() -> list[list[str]]:
    """Instructions (continuations joined) grouped by stage."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if not stages and line.upper().startswith("ARG "):
            continue  # the base images' ARGs (deploy/base-images.env), the only thing allowed here
        assert stages, f"instruction before FROM: {line}"
        stages[-1].append(line)
    return stages


def _base_image_default(reference: str) -> str:
    """The image a FROM names: itself, or the default of the global ARG it refers to, without
    the digest the pin adds (`./dev pin-images`)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    if match := re.fullmatch(r"\$\{(\w+)\}", reference):
        found = re.search(rf"^ARG {match[1]}=(\S+)$", text, re.MULTILINE)
        assert found, f"no default for {reference}"
        reference = found[1]
    return reference.split("@")[0]


def _instructions(stage: list[str], keyword: str) -> list[str]:
    return [
        line[len(keyword) :].strip() for line in stage if line.upper().startswith(keyword + " ")
    ]


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _kustomization_resources(directory: Path) -> list[str]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    resources: list[str] = kustomization["resources"]
    return resources


def _base_objects(directory: Path = BASE) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for resource in _kustomization_resources(directory):
        objects.extend(_yaml_docs(directory / resource))
    return objects


def _of_kind(kind: str, directory: Path = BASE) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obj in _base_objects(directory):
        if obj["kind"] == kind:
            name = obj["metadata"]["name"]
            assert name not in found, f"two {kind}s named {name}"
            found[name] = obj
    return found


def _component(labels: dict[str, str]) -> str | None:
    return labels.get("app.kubernetes.io/component")


# --- Dockerfile ------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_with_slim_final_stage() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "builder and final stage"
    final = _instructions(stages[-1], "FROM")[0].split()[0]
    assert _base_image_default(final) == "python:3.11-slim"
    builder = _instructions(stages[0], "FROM")[0].split()
    assert builder[-2].upper() == "AS"
    copies = _instructions(stages[-1], "COPY")
    assert any(c.startswith(f"--from={builder[-1]}") and "/opt/venv" in c for c in copies)


def test_dockerfile_final_stage_has_no_build_tools() -> None:
    final = " ".join(_dockerfile_stages()[-1]).lower()
    for tool in ("build-essential", "gcc", "g++", "make ", "apt-get install", "pip install"):
        assert tool not in final, f"final stage installs {tool.strip()}"
    copies = _instructions(_dockerfile_stages()[-1], "COPY")
    assert all(c.startswith("--from=") for c in copies), "final stage copies only the venv"


def test_dockerfile_runs_as_non_root() -> None:
    users = _instructions(_dockerfile_stages()[-1], "USER")
    assert users, "final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_dockerfile_healthcheck_entrypoint_and_host() -> None:
    final = _dockerfile_stages()[-1]
    checks = _instructions(final, "HEALTHCHECK")
    assert len(checks) == 1
    assert "/healthz" in checks[0] and "urllib.request" in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0]
    assert "port_of" in checks[0], "port of the service this container serves"
    assert _instructions(final, "ENTRYPOINT") == ['["wangban"]']
    assert _instructions(final, "CMD") == ['["serve", "gateway"]']
    env = " ".join(_instructions(final, "ENV"))
    assert "WANGBAN_HOST=0.0.0.0" in shlex.split(env)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".wangban"} <= ignored


# --- compose ---------------------------------------------------------------------------


def _wangban_compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return {name: svc for name, svc in services.items() if name in (*SERVICE_NAMES, "migrate")}


def test_compose_runs_every_service_from_the_one_image() -> None:
    services = _wangban_compose_services()
    assert set(services) == {*SERVICE_NAMES, "migrate"}
    for name, svc in services.items():
        assert svc["image"] == COMPOSE_IMAGE, name
        assert svc["env_file"] == "wangban.env", name
    for name in SERVICE_NAMES:
        assert services[name]["command"] == ["serve", name]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"


def test_compose_infrastructure_is_kraft_kafka_and_postgres_16() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].split(":")[0] == "apache/kafka"
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not any("zookeeper" in name for name in services)
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "16"
    for name in ("kafka", "postgres"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_healthchecks_probe_each_service_port() -> None:
    for name in SERVICE_NAMES:
        test = _compose()["services"][name]["healthcheck"]["test"]
        command = " ".join(test)
        assert f"127.0.0.1:{PORTS[name]}/readyz" in command, name
        assert "curl" not in command


def test_compose_start_order_is_health_gated() -> None:
    services = _wangban_compose_services()
    migrate = services["migrate"]["depends_on"]
    assert migrate == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
    }
    for name in SERVICE_NAMES:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["kafka"] == {"condition": "service_healthy"}, name
    gateway = services["gateway"]["depends_on"]
    for name in set(SERVICE_NAMES) - {"gateway"}:
        assert gateway[name] == {"condition": "service_healthy"}, name


def test_compose_publishes_only_the_gateway() -> None:
    published = {name for name, svc in _compose()["services"].items() if svc.get("ports")}
    assert published == {"gateway"}
    assert _compose()["services"]["gateway"]["ports"] == [f"{PORTS['gateway']}:{PORTS['gateway']}"]
    for name, svc in _compose()["services"].items():
        assert svc.get("network_mode") != "host", name


def test_compose_env_example_passes_the_production_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _env_file(ENV_EXAMPLE)
    assert env["WANGBAN_ENV"] == "production"
    env = _with_generated_keys(env, monkeypatch)
    settings = _settings_from(env, monkeypatch)  # raises if a production value is missing
    assert settings.database_url and settings.kafka_bootstrap
    assert settings.kafka_idempotence is True
    assert settings.notify_test_mode is False
    for name in SERVICE_NAMES:
        assert settings.url_of(name) == f"http://{name}:{PORTS[name]}"
    # The postgres container and the URL agree on the credentials.
    database = _env_file(POSTGRES_ENV_EXAMPLE)
    assert env["WANGBAN_DATABASE_URL"] == (
        f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{database['POSTGRES_DB']}"
    )


def test_compose_env_example_comments_each_section_and_holds_no_secrets() -> None:
    env = _env_file(ENV_EXAMPLE)
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    comments = sum(1 for line in lines if line.startswith("#"))
    assert comments >= len(env) // 2, "the env file explains its settings"
    secrets = {k: v for k, v in env.items() if k in SECRET_SETTINGS or "PASSWORD" in k}
    assert {"WANGBAN_INTERNAL_TOKEN_KEY", "WANGBAN_FIELD_ENCRYPTION_KEYS"} <= set(secrets)
    for key, value in secrets.items():
        assert PLACEHOLDER in value, f"{key} must be a placeholder"
    assert PLACEHOLDER in env["WANGBAN_DATABASE_URL"]


def test_filled_in_env_files_are_git_ignored() -> None:
    ignore = (DEPLOY / "compose" / ".gitignore").read_text(encoding="utf-8").split()
    assert {"wangban.env", "postgres.env"} <= set(ignore)


def test_compose_gives_each_container_only_its_own_settings() -> None:
    """The database container reads its own three settings, never the application's secrets;
    Kafka has no env file at all; only the Wangban containers read wangban.env."""
    services = _compose()["services"]
    assert services["postgres"]["env_file"] == "postgres.env"
    assert set(_env_file(POSTGRES_ENV_EXAMPLE)) == {
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
    }
    assert PLACEHOLDER in _env_file(POSTGRES_ENV_EXAMPLE)["POSTGRES_PASSWORD"]
    assert not any(k.startswith("POSTGRES_") for k in _env_file(ENV_EXAMPLE))
    assert "env_file" not in services["kafka"]
    readers = {name for name, svc in services.items() if svc.get("env_file") == "wangban.env"}
    assert readers == set(_wangban_compose_services())


def test_compose_kafka_cluster_id_is_a_kafka_uuid() -> None:
    """KRaft formats its log directory with CLUSTER_ID: 16 bytes in URL-safe base64, unpadded
    (what `kafka-storage.sh random-uuid` prints); anything else is refused at the first start."""
    cluster_id = _compose()["services"]["kafka"]["environment"]["CLUSTER_ID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


# --- Kubernetes base -------------------------------------------------------------------


def test_kustomization_lists_every_manifest_except_the_secret_example() -> None:
    listed = set(_kustomization_resources(BASE))
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {SECRET_EXAMPLE.name, DB_LOGINS_EXAMPLE.name}
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "secretGenerator" not in kustomization
    assert not [obj for obj in _base_objects() if obj["kind"] == "Secret"]


def test_every_service_has_a_deployment_on_the_one_image() -> None:
    deployments = _of_kind("Deployment")
    assert set(deployments) == set(SERVICE_NAMES)
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == K8S_IMAGE, name
        assert container["args"] == ["serve", name]
        assert [p["containerPort"] for p in container["ports"]] == [PORTS[name], METRICS_PORT]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert dep["spec"]["selector"]["matchLabels"].items() <= (
            dep["spec"]["template"]["metadata"]["labels"].items()
        )


def test_deployments_probe_readyz_and_healthz_on_their_port() -> None:
    for name, dep in _of_kind("Deployment").items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        ready = container["readinessProbe"]["httpGet"]
        live = container["livenessProbe"]["httpGet"]
        assert (ready["path"], ready["port"]) == ("/readyz", PORTS[name]), name
        assert (live["path"], live["port"]) == ("/healthz", PORTS[name]), name


def test_deployments_have_resource_requests_and_limits() -> None:
    for name, dep in _of_kind("Deployment").items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name} {kind}"


def test_deployments_are_scraped_by_prometheus() -> None:
    for name, dep in _of_kind("Deployment").items():
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(METRICS_PORT), name
        assert annotations["prometheus.io/path"] == "/metrics", name
    (config,) = _of_kind("ConfigMap").values()
    assert config["data"]["WANGBAN_METRICS_PORT"] == str(METRICS_PORT)


def test_pods_read_the_configmap_and_the_secret() -> None:
    pods = [dep["spec"]["template"]["spec"] for dep in _of_kind("Deployment").values()]
    pods += [job["spec"]["template"]["spec"] for job in _of_kind("Job", MIGRATE).values()]
    configmaps = _of_kind("ConfigMap")
    for pod in pods:
        for container in pod["containers"]:
            sources = container["envFrom"]
            assert {"configMapRef": {"name": CONFIG_NAME}} in sources
            assert {"secretRef": {"name": SECRET_NAME}} in sources
            assert all(
                s["configMapRef"]["name"] in configmaps for s in sources if "configMapRef" in s
            )


def test_configmap_and_secret_example_pass_the_production_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _of_kind("ConfigMap")[CONFIG_NAME]["data"]
    (secret,) = _yaml_docs(SECRET_EXAMPLE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    secret_data: dict[str, str] = secret["stringData"]
    assert not set(config) & set(secret_data), "each setting in one place"
    for key in config:
        assert key not in SECRET_SETTINGS, f"{key} is a secret: it belongs in the Secret"
        assert key != "WANGBAN_DATABASE_URL", "the database URL holds a password"
    filled = _with_generated_keys({**config, **secret_data}, monkeypatch)
    settings = _settings_from(filled, monkeypatch)
    assert settings.kafka_idempotence is True
    assert settings.notify_test_mode is False
    assert settings.kafka_replication_factor >= 3
    for name in SERVICE_NAMES:
        assert settings.url_of(name) == f"http://{name}:{PORTS[name]}"


def test_secret_example_holds_only_placeholders() -> None:
    (secret,) = _yaml_docs(SECRET_EXAMPLE)
    assert "data" not in secret, "base64 data hides what is committed"
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER in value, f"{key} must be a placeholder"


def test_no_secret_manifest_with_values_anywhere_under_deploy() -> None:
    for path in DEPLOY.rglob("*.y*ml"):
        for doc in _yaml_docs(path):
            if doc.get("kind") != "Secret":
                continue
            values = {**doc.get("stringData", {}), **doc.get("data", {})}
            assert path in (SECRET_EXAMPLE, DB_LOGINS_EXAMPLE), f"{path} commits a Secret"
            assert all(PLACEHOLDER in str(v) for v in values.values()), path


def test_services_are_cluster_ip_on_the_service_port() -> None:
    services = _of_kind("Service")
    deployments = _of_kind("Deployment")
    assert set(services) == set(SERVICE_NAMES)
    for name, svc in services.items():
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", name
        assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
            (PORTS[name], PORTS[name])
        ]
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items(), name


def test_a_pod_disruption_budget_per_service() -> None:
    pdbs = _of_kind("PodDisruptionBudget")
    deployments = _of_kind("Deployment")
    covered = set()
    for pdb in pdbs.values():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert "minAvailable" in pdb["spec"] or "maxUnavailable" in pdb["spec"]
        for name, dep in deployments.items():
            if selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items():
                covered.add(name)
    assert covered == set(SERVICE_NAMES)
    assert len(pdbs) == len(SERVICE_NAMES)


def test_autoscalers_for_gateway_intake_and_approval() -> None:
    hpas = _of_kind("HorizontalPodAutoscaler")
    targets = {}
    for hpa in hpas.values():
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
        targets[ref["name"]] = hpa
    assert set(targets) == HPA_SERVICES
    # CPU utilisation needs CPU requests on the target (checked above) to work.
    for hpa in targets.values():
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_migration_job_runs_wangban_migrate_then_the_database_roles() -> None:
    """The Job migrates (an init container: it must finish first), then gives each service its
    own login reaching only its schema (`wangban db roles`); it completes only when both have."""
    jobs = _of_kind("Job", MIGRATE)
    assert len(jobs) == 1
    (job,) = jobs.values()
    pod = job["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    (roles,) = pod["containers"]
    for container, args in ((migrate, ["migrate"]), (roles, ["db", "roles"])):
        assert container["image"] == K8S_IMAGE
        command = [*container.get("command", ["wangban"]), *container["args"]]
        assert command == ["wangban", *args]
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert {"secretRef": {"name": SECRET_NAME}} in container["envFrom"]
    # Both connect as the migrator (wangban-secrets); only passwords for the logins are added.
    assert not migrate.get("env")
    assert all(e["name"].startswith("WANGBAN_DB_PASSWORD_") for e in roles["env"])
    assert pod["restartPolicy"] in ("Never", "OnFailure")


def test_each_service_connects_with_its_own_database_login() -> None:
    """Production runs every service as its own PostgreSQL login reaching only its schema
    (docs/security.md): its Deployment takes WANGBAN_DATABASE_URL from a Secret of its own naming
    the login `wangban db roles` makes for it, and the migrate Job's roles step sets that login's
    password from the same Secret. No pod is given another service's login."""
    logins = {doc["metadata"]["name"]: doc["stringData"] for doc in _yaml_docs(DB_LOGINS_EXAMPLE)}
    assert set(logins) == {f"wangban-db-{name}" for name in SERVICE_NAMES}
    deployments = _of_kind("Deployment")
    (job,) = _of_kind("Job", MIGRATE).values()
    (roles,) = job["spec"]["template"]["spec"]["containers"]
    passwords = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in roles["env"]}
    for name in SERVICE_NAMES:
        secret = f"wangban-db-{name}"
        assert logins[secret]["url"].startswith(f"postgresql://{runtime_role(name)}:")
        assert PLACEHOLDER in logins[secret]["password"]
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])]
        assert refs == [{"name": secret, "key": "url"}], name
        assert passwords[password_variable(name)] == {"name": secret, "key": "password"}


def _admitted_pods(policy: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = policy["spec"]["podSelector"].get("matchLabels", {})
    return labels


def _peer_is_inside(peer: dict[str, Any]) -> bool:
    """A peer limited to this namespace, or to Prometheus in the monitoring namespace."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" not in peer:
        return "podSelector" in peer
    namespace = peer["namespaceSelector"].get("matchLabels", {})
    pods = peer.get("podSelector", {}).get("matchLabels", {})
    return namespace == {"kubernetes.io/metadata.name": "monitoring"} and bool(pods)


def test_network_policies_deny_by_default_and_expose_only_the_gateway() -> None:
    policies = _of_kind("NetworkPolicy")
    deny = [
        p
        for p in policies.values()
        if p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"]["policyTypes"]
        and not p["spec"].get("ingress")
    ]
    assert deny, "a default-deny ingress policy"
    open_to_outside = set()
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            if not peers or not all(_peer_is_inside(peer) for peer in peers):
                selected = _admitted_pods(policy)
                assert _component(selected) == "gateway", f"{name} admits outside traffic"
                assert [p["port"] for p in rule["ports"]] == [PORTS["gateway"]]
                open_to_outside.add(name)
    assert open_to_outside, "the gateway is reachable from outside"


def test_network_policies_allow_service_to_service_and_prometheus() -> None:
    policies = _of_kind("NetworkPolicy").values()
    pod_labels = {"app.kubernetes.io/name": "wangban"}

    def admits(peer_check: Any, port: int) -> bool:
        for policy in policies:
            if not _admitted_pods(policy).items() <= pod_labels.items():
                continue
            for rule in policy["spec"].get("ingress", []):
                if not any(peer_check(p) for p in rule.get("from", [])):
                    continue
                for p in rule.get("ports", []):
                    if p["port"] <= port <= p.get("endPort", p["port"]):
                        return True
        return False

    for port in PORTS.values():
        assert admits(lambda p: p == {"podSelector": {}}, port), port
    # Prometheus reaches the metrics port, and only that one.
    assert admits(lambda p: "namespaceSelector" in p, METRICS_PORT)
    for port in PORTS.values():
        assert not admits(lambda p: "namespaceSelector" in p, port), port


def test_hpa_managed_deployments_leave_the_replica_count_to_the_autoscaler() -> None:
    """A Deployment's replicas, applied again with each release, would scale an autoscaled
    service back below the HPA's minimum until the HPA noticed."""
    for name, dep in _of_kind("Deployment").items():
        assert ("replicas" in dep["spec"]) is (name not in HPA_SERVICES), name
    for doc in _yaml_docs(PRODUCTION / "replicas.yaml"):
        assert doc["metadata"]["name"] not in HPA_SERVICES


def test_replicas_spread_over_nodes_and_zones() -> None:
    for name, dep in _of_kind("Deployment").items():
        pod = dep["spec"]["template"]
        constraints = pod["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, name
        for constraint in constraints:
            # Counting this service's own pods only, and never leaving one unscheduled.
            assert (
                constraint["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
            ), name
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway", name
            assert constraint["maxSkew"] == 1, name


def test_the_migration_job_is_applied_on_its_own_and_named_per_release() -> None:
    """Applying the services never re-applies a Job (whose template is immutable), and each
    release's Job is a new object: its name carries the release the production overlay runs."""
    assert not _of_kind("Job")
    assert set(_kustomization_resources(MIGRATE)) == {
        p.name for p in MIGRATE.glob("*.yaml") if p.name != "kustomization.yaml"
    }
    overlay = yaml.safe_load((PRODUCTION_MIGRATE / "kustomization.yaml").read_text("utf-8"))
    production = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text("utf-8"))
    assert overlay["resources"] == ["../../migrate"]
    assert overlay["images"] == production["images"]
    (image,) = production["images"]
    assert overlay["nameSuffix"] == "-" + image["newTag"].replace(".", "-")
    # The first install applies the ConfigMap alone (by this label) before the Job reads it.
    config = _of_kind("ConfigMap")[CONFIG_NAME]
    assert _component(config["metadata"]["labels"]) == "config"


# --- production overlay -----------------------------------------------------------------


def test_production_overlay_sets_the_image_and_patches() -> None:
    kustomization = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["resources"] == ["../../base"]
    (image,) = kustomization["images"]
    assert image["name"] == K8S_IMAGE.split(":")[0]
    assert image["newTag"] and image["newName"]
    targets: set[tuple[str, str]] = set()
    for patch in kustomization["patches"]:
        for doc in _yaml_docs(PRODUCTION / patch["path"]):
            targets.add((doc["kind"], doc["metadata"]["name"]))
    base = {(obj["kind"], obj["metadata"]["name"]) for obj in _base_objects()}
    assert targets <= base, targets - base
    kinds = {kind for kind, _ in targets}
    assert {"Deployment", "HorizontalPodAutoscaler"} <= kinds
    for doc in _yaml_docs(PRODUCTION / "resources.yaml"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            assert {"requests", "limits"} <= set(container["resources"])


# --- every WANGBAN_ name is a setting --------------------------------------------------


def _deploy_files() -> list[Path]:
    return [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / ".dockerignore"]


def test_every_wangban_variable_under_deploy_is_a_setting() -> None:
    # And the login passwords that only `wangban db roles` reads (not settings of a service).
    fields = _settings_fields() | {password_variable(name) for name in SERVICE_NAMES}
    seen = set()
    for path in _deploy_files():
        for name in WANGBAN_NAME.findall(path.read_text(encoding="utf-8")):
            assert name in fields, f"{path.relative_to(ROOT)}: {name} is not a Settings field"
            seen.add(name)
    assert {"WANGBAN_DATABASE_URL", "WANGBAN_KAFKA_BOOTSTRAP", "WANGBAN_HOST"} <= seen


def test_k8s_settings_are_documented_in_the_env_example() -> None:
    documented = set(WANGBAN_NAME.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    config = _of_kind("ConfigMap")[CONFIG_NAME]["data"]
    (secret,) = _yaml_docs(SECRET_EXAMPLE)
    assert set(config) | set(secret["stringData"]) <= documented
