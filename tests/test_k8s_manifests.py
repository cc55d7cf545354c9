"""The container image and the Kubernetes manifests, checked without Docker or a cluster.

- every manifest in k8s/ (and the Secret template) validates, strictly, against the
  schema of KUBERNETES_VERSION;
- the kustomization renders (tests/k8s_render.py, a small `kustomize build`), the result
  validates, and the image override, labels and namespace apply;
- every workload is hardened (probes, requests and limits, non-root read-only container);
- drift: every environment variable the manifests set is a real setting, and every
  setting a command requires reaches the deployable that runs it;
- the Dockerfile is multi-stage, non-root, and runs `python -m service`.
The checker functions return lists of problems; negative tests feed them broken input.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate_utils

from service.__main__ import COMMANDS
from service.settings import Settings, is_placeholder
from tests.k8s_render import (
    Resource,
    UnsupportedKustomization,
    containers,
    load_documents,
    pod_specs,
    pod_templates,
    render,
    split_image,
)

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

KUBERNETES_VERSION = "1.31"
IMAGE_NAME = "ghcr.io/your-org/marketplace-webhook-gateway"
APP_UID = 10001
SECRET_TEMPLATE = "secret.example.yaml"
CONSOLE_SECRET_TEMPLATE = "console-secret.example.yaml"  # the console's own Secret
KAFKA_PARTITIONS = 100  # marketplace.orders in production (docs/contract.md#the-kafka-record)
INGEST_PORT = 8080

# What each command needs before it can start. Each inner tuple is "any of these".
REQUIRED_SETTINGS: dict[str, list[tuple[str, ...]]] = {
    "serve": [("SHOPEE_CALLBACK_URL",), ("SHOPEE_PUSH_KEY", "SHOPEE_PARTNER_KEY"), ("KAFKA_BOOTSTRAP_SERVERS",)],
    "consume": [("DATABASE_URL",), ("SHOPEE_PARTNER_ID",), ("SHOPEE_PARTNER_KEY",), ("KAFKA_BOOTSTRAP_SERVERS",)],
    "migrate": [("DATABASE_URL",)],
    "replay": [("KAFKA_BOOTSTRAP_SERVERS",)],
    "recover": [
        ("DATABASE_URL",),
        ("SHOPEE_PARTNER_ID",),
        ("SHOPEE_PARTNER_KEY",),
        ("KAFKA_BOOTSTRAP_SERVERS",),
    ],
    "console": [("CONSOLE_SECRET_KEY",), ("CONSOLE_USERS", "CONSOLE_TRUSTED_HEADER"), ("DATABASE_URL",)],
}


# -- loading -----------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rendered() -> list[Resource]:
    return render(K8S)


@pytest.fixture(scope="module")
def secret_template() -> Resource:
    (secret,) = load_documents(K8S / SECRET_TEMPLATE)
    return secret


def by_kind(resources: Iterable[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def named(resources: Iterable[Resource], kind: str, name: str) -> Resource:
    (match,) = [r for r in by_kind(resources, kind) if r["metadata"]["name"] == name]
    return match


def workloads(resources: Iterable[Resource]) -> list[Resource]:
    return [r for r in resources if list(pod_specs(r))]


def command_of(container: dict[str, Any]) -> str:
    return (container.get("args") or container.get("command"))[0]


def arg_value(container: dict[str, Any], flag: str) -> str | None:
    args = container.get("args", [])
    return args[args.index(flag) + 1] if flag in args else None


# -- checkers ----------------------------------------------------------------------------


def schema_errors(resource: Resource, version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict schema validation: unknown fields and wrong types are errors."""
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        return [f"{resource['kind']}/{resource['metadata'].get('name')}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def _effective_security(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    container_ctx = container.get("securityContext", {})
    return container_ctx[key] if key in container_ctx else pod.get("securityContext", {}).get(key)


def _port_number(container: dict[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    return None


def workload_problems(resource: Resource) -> list[str]:
    """Hardening every workload must have; long-running ones also need probes."""
    where = f"{resource['kind']}/{resource['metadata']['name']}"
    problems: list[str] = []
    long_running = resource["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}
    for pod in pod_specs(resource):
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for c in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            at = f"{where}/{c['name']}"
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in c.get("resources", {}).get(kind, {}):
                        problems.append(f"{at}: no resources.{kind}.{res}")
            if long_running and c in pod.get("containers", []):
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problems.append(f"{at}: no {probe}")
                    elif "httpGet" in c[probe] and _port_number(c, c[probe]["httpGet"]["port"]) is None:
                        problems.append(f"{at}: {probe} port is not a container port")
            expected = {
                "runAsNonRoot": True,
                "runAsUser": APP_UID,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
            }
            for key, value in expected.items():
                if _effective_security(pod, c, key) != value:
                    problems.append(f"{at}: securityContext.{key} is not {value}")
            if "ALL" not in c.get("securityContext", {}).get("capabilities", {}).get("drop", []):
                problems.append(f"{at}: capabilities do not drop ALL")
            if (_effective_security(pod, c, "seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{at}: seccompProfile is not RuntimeDefault")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if mounts.get("/tmp") not in tmp_volumes:
                problems.append(f"{at}: no writable emptyDir at /tmp")
            if split_image(c["image"])[1] in (None, "latest") and "@" not in c["image"]:
                problems.append(f"{at}: image {c['image']!r} is not pinned")
    return problems


def setting_names() -> set[str]:
    """Environment variable names Settings reads (case-insensitive, no prefix)."""
    names = {"SECRETS_DIR"}
    for field_name, field in Settings.model_fields.items():
        names.add(field_name.upper())
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
        if field.alias:
            names.add(field.alias.upper())
    return names


def unknown_env_names(names: Iterable[str]) -> list[str]:
    known = setting_names()
    return sorted(n for n in names if n.upper() not in known)


def container_env(
    container: dict[str, Any], configmaps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """Name -> value of every variable the container gets (secret values from the template)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = configmaps[source["configMapRef"]["name"]]
        else:
            data = secrets[source["secretRef"]["name"]]
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"].get("configMapKeyRef")
            store = secrets if "secretKeyRef" in var["valueFrom"] else configmaps
            env[var["name"]] = store[ref["name"]][ref["key"]]
    return env


def missing_required(command: str, env: Iterable[str]) -> list[str]:
    available = set(env)
    return [
        " or ".join(alternatives)
        for alternatives in REQUIRED_SETTINGS.get(command, [])
        if not available & set(alternatives)
    ]


def config_sources(
    resources: list[Resource], secret: Resource
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    configmaps = {r["metadata"]["name"]: r.get("data", {}) for r in by_kind(resources, "ConfigMap")}
    secrets = {
        r["metadata"]["name"]: {**r.get("data", {}), **r.get("stringData", {})} for r in by_kind(resources, "Secret")
    }
    secrets.setdefault(secret["metadata"]["name"], {**secret.get("data", {}), **secret.get("stringData", {})})
    (console,) = load_documents(K8S / CONSOLE_SECRET_TEMPLATE)
    secrets.setdefault(console["metadata"]["name"], {**console.get("data", {}), **console.get("stringData", {})})
    return configmaps, secrets


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, arguments) grouped by stage; anything before FROM is stage 0's preamble."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def dockerfile_problems(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        return ["not a multi-stage build (fewer than two FROM)"]
    problems: list[str] = []
    final = stages[-1]
    users = [rest for kw, rest in final if kw == "USER"]
    if not users:
        problems.append("the final stage sets no USER (runs as root)")
    else:
        user = users[-1].split(":")[0]
        if user in {"root", "0"}:
            problems.append("the final stage runs as root")
        elif user != str(APP_UID):
            problems.append(f"the final USER is {user!r}, not the numeric uid {APP_UID} the manifests expect")
    entrypoints = [rest for kw, rest in final if kw == "ENTRYPOINT"]
    if not entrypoints or json.loads(entrypoints[-1]) != ["python", "-m", "service"]:
        problems.append('ENTRYPOINT is not ["python", "-m", "service"]')
    cmds = [rest for kw, rest in final if kw == "CMD"]
    if cmds and json.loads(cmds[-1])[0] != "serve":
        problems.append("the default CMD is not serve")
    for kw, rest in final:
        if kw in {"COPY", "ADD"} and "--from=" not in rest:
            problems.append(f"the final stage copies from the build context: {kw} {rest}")
        if (
            kw == "RUN"
            and re.search(r"\b(gcc|g\+\+|build-essential|make|[a-z0-9.+-]+-dev)\b", rest)
            and "install" in rest
        ):
            problems.append(f"the final stage installs build tools: {rest}")
    env_text = " ".join(rest for kw, rest in final if kw == "ENV")
    for var in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"):
        if var not in env_text:
            problems.append(f"the final stage does not set {var}")
    return problems


# -- (a) every manifest validates --------------------------------------------------------


def test_pinned_kubernetes_version_is_shipped_by_kubernetes_validate() -> None:
    shipped = {kubernetes_validate_utils.major_minor(v) for v in kubernetes_validate_utils.all_versions()}
    assert KUBERNETES_VERSION in shipped


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path) -> None:
    docs = load_documents(path)
    assert docs
    assert [e for doc in docs for e in schema_errors(doc)] == []


def test_schema_check_catches_an_unknown_field() -> None:
    deployment = copy.deepcopy(named(load_documents(K8S / "ingest.yaml"), "Deployment", "gateway-ingest"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    assert any("livenessProb" in e for e in schema_errors(deployment))


def test_schema_check_catches_a_wrong_type() -> None:
    deployment = copy.deepcopy(named(load_documents(K8S / "consumer.yaml"), "Deployment", "gateway-consumer"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9100"
    assert schema_errors(deployment)


# -- (b) the kustomization renders -------------------------------------------------------


def test_kustomization_lists_every_manifest_but_not_the_secret_template() -> None:
    listed = set(kustomization()["resources"])
    assert SECRET_TEMPLATE not in listed and CONSOLE_SECRET_TEMPLATE not in listed
    assert listed == {p.name for p in manifest_files()} - {SECRET_TEMPLATE, CONSOLE_SECRET_TEMPLATE}


def test_rendered_base_validates_strictly(rendered: list[Resource]) -> None:
    kinds = sorted(r["kind"] for r in rendered)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Job",
            "Deployment",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Ingress",
            "Deployment",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ]
    )
    assert [e for r in rendered for e in schema_errors(r)] == []
    assert not by_kind(rendered, "Secret"), "real secrets are created out of band"


def test_rendered_base_pins_the_image_from_the_kustomization(rendered: list[Resource]) -> None:
    (image,) = [i for i in kustomization()["images"] if i["name"] == IMAGE_NAME]
    images = {c["image"] for r in rendered for c in containers(r)}
    assert images == {f"{IMAGE_NAME}:{image['newTag']}"}


def test_rendered_labels_reach_templates_but_not_selectors(rendered: list[Resource]) -> None:
    for resource in rendered:
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "marketplace-webhook-gateway"
        for template in pod_templates(resource):
            assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "marketplace-webhook-gateway"
        if resource["kind"] == "Deployment":
            assert "app.kubernetes.io/part-of" not in resource["spec"]["selector"]["matchLabels"]


def test_overlay_overrides_image_namespace_and_labels(tmp_path: Path) -> None:
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "gateway-prod",
        "resources": [os.path.relpath(K8S, tmp_path)],
        "commonLabels": {"env": "prod"},
        "images": [{"name": IMAGE_NAME, "newName": "registry.internal/gateway", "newTag": "1.2.3"}],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    resources = render(tmp_path)
    assert {r["metadata"]["namespace"] for r in resources} == {"gateway-prod"}
    assert {c["image"] for r in resources for c in containers(r)} == {"registry.internal/gateway:1.2.3"}
    ingest = named(resources, "Deployment", "gateway-ingest")
    assert ingest["spec"]["selector"]["matchLabels"]["env"] == "prod"
    assert ingest["spec"]["template"]["metadata"]["labels"]["env"] == "prod"
    assert named(resources, "Service", "gateway-ingest")["spec"]["selector"]["env"] == "prod"
    assert [e for r in resources for e in schema_errors(r)] == []


def test_renderer_refuses_fields_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [os.path.relpath(K8S, tmp_path)], "patches": [{"path": "x.yaml"}]}),
        encoding="utf-8",
    )
    with pytest.raises(UnsupportedKustomization, match="patches"):
        render(tmp_path)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/o/n:1.0", ("ghcr.io/o/n", "1.0", None)),
        ("localhost:5000/n", ("localhost:5000/n", None, None)),
        ("n@sha256:ab", ("n", None, "sha256:ab")),
    ],
)
def test_split_image(image: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_image(image) == expected


# -- workloads are hardened --------------------------------------------------------------


def test_every_workload_is_hardened(rendered: list[Resource]) -> None:
    assert {r["metadata"]["name"] for r in workloads(rendered)} == {
        "gateway-ingest",
        "gateway-consumer",
        "gateway-migrate",
        "gateway-recover",
        "gateway-console",
    }
    assert [p for r in workloads(rendered) for p in workload_problems(r)] == []


def test_hardening_check_catches_a_missing_probe_and_a_writable_root() -> None:
    deployment = copy.deepcopy(named(load_documents(K8S / "consumer.yaml"), "Deployment", "gateway-consumer"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["readinessProbe"]
    del container["resources"]["limits"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    problems = workload_problems(deployment)
    assert any("readinessProbe" in p for p in problems)
    assert any("limits.memory" in p for p in problems)
    assert any("readOnlyRootFilesystem" in p for p in problems)


def test_workloads_run_real_commands(rendered: list[Resource]) -> None:
    commands = {r["metadata"]["name"]: command_of(c) for r in workloads(rendered) for c in containers(r)}
    assert commands == {
        "gateway-ingest": "serve",
        "gateway-consumer": "consume",
        "gateway-migrate": "migrate",
        "gateway-recover": "recover",
        "gateway-console": "console",
    }
    assert set(commands.values()) <= set(COMMANDS)


def test_prometheus_scrape_annotations_point_at_a_container_port(rendered: list[Resource]) -> None:
    for deployment in by_kind(rendered, "Deployment"):
        template = deployment["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true"
        assert annotations.get("prometheus.io/path") == "/metrics"
        ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert int(annotations["prometheus.io/port"]) in ports


def test_ingest_port_matches_args_probes_and_service(rendered: list[Resource]) -> None:
    deployment = named(rendered, "Deployment", "gateway-ingest")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert arg_value(container, "--port") == str(INGEST_PORT)
    assert arg_value(container, "--host") == "0.0.0.0"  # noqa: S104 - a pod must listen on its pod IP
    assert [p["containerPort"] for p in container["ports"]] == [INGEST_PORT]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert _port_number(container, container[probe]["httpGet"]["port"]) == INGEST_PORT
    service = named(rendered, "Service", "gateway-ingest")
    (port,) = service["spec"]["ports"]
    assert _port_number(container, port["targetPort"]) == INGEST_PORT
    assert int(deployment["spec"]["replicas"]) >= 2


def test_ingest_service_pdb_and_hpa_select_the_ingest_pods(rendered: list[Resource]) -> None:
    deployment = named(rendered, "Deployment", "gateway-ingest")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = named(rendered, "Service", "gateway-ingest")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = named(rendered, "PodDisruptionBudget", "gateway-ingest")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = named(rendered, "HorizontalPodAutoscaler", "gateway-ingest")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway-ingest"}
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    ingress = named(rendered, "Ingress", "gateway-ingest")
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert backends == [{"name": "gateway-ingest", "port": {"name": service["spec"]["ports"][0]["name"]}}]
    assert [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]] == ["/webhooks/shopee"]


def test_consumer_replicas_stay_within_partitions(rendered: list[Resource]) -> None:
    consumer = named(rendered, "Deployment", "gateway-consumer")
    assert 1 <= consumer["spec"]["replicas"] <= KAFKA_PARTITIONS
    assert consumer["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(rendered, "HorizontalPodAutoscaler")}
    assert "gateway-consumer" not in targets


def test_consumer_grace_period_outlasts_its_shutdown_grace(rendered: list[Resource], secret_template: Resource) -> None:
    configmaps, secrets = config_sources(rendered, secret_template)
    consumer = named(rendered, "Deployment", "gateway-consumer")
    (container,) = consumer["spec"]["template"]["spec"]["containers"]
    env = container_env(container, configmaps, secrets)
    shutdown_grace = float(env.get("SHUTDOWN_GRACE_SECONDS", Settings.model_fields["shutdown_grace_seconds"].default))
    grace_period = consumer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace_period >= shutdown_grace + 10, "leave room for leaving the group after the flush"
    metrics_port = int(env.get("CONSUMER_METRICS_PORT", Settings.model_fields["consumer_metrics_port"].default))
    assert _port_number(container, container["livenessProbe"]["httpGet"]["port"]) == metrics_port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_migrate_job_is_bounded(rendered: list[Resource]) -> None:
    job = named(rendered, "Job", "gateway-migrate")
    assert 0 < job["spec"]["backoffLimit"] <= 6
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


# -- (c) drift between the manifests and Settings ----------------------------------------


def test_every_env_name_in_the_manifests_is_a_setting(rendered: list[Resource], secret_template: Resource) -> None:
    configmaps, secrets = config_sources(rendered, secret_template)
    names = {k for data in [*configmaps.values(), *secrets.values()] for k in data}
    names |= {var["name"] for r in rendered for c in containers(r) for var in c.get("env", [])}
    assert names
    assert unknown_env_names(names) == []


def test_drift_check_catches_a_misspelled_env_name() -> None:
    assert unknown_env_names(["KAFKA_BOOTSTRAP_SERVER", "DATABASE_URL", "SECRETS_DIR"]) == ["KAFKA_BOOTSTRAP_SERVER"]


def test_every_command_gets_the_settings_it_requires(rendered: list[Resource], secret_template: Resource) -> None:
    configmaps, secrets = config_sources(rendered, secret_template)
    seen = set()
    for resource in workloads(rendered):
        for container in containers(resource):
            command = command_of(container)
            seen.add(command)
            env = container_env(container, configmaps, secrets)
            assert missing_required(command, env) == [], f"{resource['metadata']['name']} ({command})"
    assert seen == {"serve", "consume", "migrate", "recover", "console"}


def test_required_check_catches_a_missing_setting() -> None:
    assert missing_required("consume", ["KAFKA_BOOTSTRAP_SERVERS", "SHOPEE_PARTNER_ID", "SHOPEE_PARTNER_KEY"]) == [
        "DATABASE_URL"
    ]
    assert missing_required("serve", ["SHOPEE_CALLBACK_URL", "KAFKA_BOOTSTRAP_SERVERS"]) == [
        "SHOPEE_PUSH_KEY or SHOPEE_PARTNER_KEY"
    ]
    assert missing_required("serve", ["SHOPEE_CALLBACK_URL", "KAFKA_BOOTSTRAP_SERVERS", "SHOPEE_PARTNER_KEY"]) == []


def test_kafka_api_key_and_secret_travel_together(rendered: list[Resource], secret_template: Resource) -> None:
    configmaps, secrets = config_sources(rendered, secret_template)
    for resource in workloads(rendered):
        for container in containers(resource):
            env = container_env(container, configmaps, secrets)
            assert ("KAFKA_API_KEY" in env) == ("KAFKA_API_SECRET" in env)


def test_configmap_values_are_valid_settings(rendered: list[Resource]) -> None:
    """Non-placeholder values must pass Settings' own validation (types and bounds)."""
    env = {k: v for cm in by_kind(rendered, "ConfigMap") for k, v in cm["data"].items()}
    env |= {
        var["name"]: var["value"] for r in rendered for c in containers(r) for var in c.get("env", []) if "value" in var
    }
    real = {k.lower(): v for k, v in env.items() if not is_placeholder(v)}
    settings = Settings.model_validate(real)
    assert settings.batch_max_size == int(env["BATCH_MAX_SIZE"])


def test_shipped_placeholders_stop_start_up(rendered: list[Resource], secret_template: Resource) -> None:
    """An unedited deploy must fail loudly, not verify pushes against a wrong URL or key."""
    (configmap,) = by_kind(rendered, "ConfigMap")
    assert is_placeholder(configmap["data"]["SHOPEE_CALLBACK_URL"])
    assert is_placeholder(configmap["data"]["SHOPEE_PARTNER_ID"])
    values = {**secret_template.get("stringData", {}), **secret_template.get("data", {})}
    assert values
    assert [k for k, v in values.items() if not is_placeholder(v)] == [], (
        "the Secret template holds real-looking values"
    )


# -- the Dockerfile ----------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_runs_the_service() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('FROM python:3.11-slim\nCOPY . .\nENTRYPOINT ["python", "-m", "service"]\n', "multi-stage"),
        ("FROM a AS b\nRUN x\nFROM a\nUSER root\n", "root"),
        ('FROM a AS b\nFROM a\nUSER 10001\nCOPY . /app\nENTRYPOINT ["python", "-m", "service"]\n', "build context"),
        ('FROM a AS b\nFROM a\nUSER 10001\nENTRYPOINT ["python", "app.py"]\n', "ENTRYPOINT"),
    ],
)
def test_dockerfile_check_catches(broken: str, expected: str) -> None:
    assert any(expected in p for p in dockerfile_problems(broken))


def test_dockerfile_builder_copies_exist_and_are_not_dockerignored() -> None:
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for stage in dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8")):
        for keyword, rest in stage:
            if keyword == "COPY" and "--from=" not in rest:
                sources.extend(json.loads(rest)[:-1] if rest.startswith("[") else rest.split()[:-1])
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get("readme")
    needed = {"pyproject.toml", "service", "transforms"} | ({readme} if isinstance(readme, str) else set())
    assert needed <= set(sources), "the builder must copy what `pip install .` reads"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"
    assert {".git", ".venv", ".env"} <= set(ignored)


def test_the_image_leaves_the_sandbox_out_and_nothing_it_ships_imports_it() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert "service/sandbox" in ignored
    shipped = [p for p in (ROOT / "service").rglob("*.py") if "sandbox" not in p.relative_to(ROOT).parts]
    shipped += list((ROOT / "transforms").rglob("*.py"))
    importing = re.compile(r"^\s*(from|import)\s+service\.sandbox\b", re.MULTILINE)
    assert [str(p.relative_to(ROOT)) for p in shipped if importing.search(p.read_text(encoding="utf-8"))] == []
