"""Loaders and checkers for the Kubernetes manifests and the Dockerfile, shared by
tests/test_k8s_manifests.py, test_k8s_workloads.py, test_k8s_settings.py and
test_dockerfile.py (the fixtures `rendered` and `secret_template` are in conftest.py).
Each checker returns a list of problems; the negative tests feed it broken input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from service.settings import Settings
from tests.k8s_render import (
    Resource,
    load_documents,
    pod_specs,
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


def port_number(container: dict[str, Any], port: int | str) -> int | None:
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
                    elif "httpGet" in c[probe] and port_number(c, c[probe]["httpGet"]["port"]) is None:
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
