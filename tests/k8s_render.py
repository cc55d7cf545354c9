"""A small, strict stand-in for `kustomize build`, for the tests (no binary, no cluster).

It implements only the kustomization fields this repository uses: `resources` (files, or
directories holding a kustomization.yaml), `namespace`, `labels` (with includeSelectors
and includeTemplates), `commonLabels`, `commonAnnotations` and `images`. Any other field
raises UnsupportedKustomization, so adding, say, `patches:` to k8s/ makes the tests fail
loudly until this renderer learns it, instead of passing on a wrong rendering.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "commonLabels", "commonAnnotations", "images"}
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
POD_TEMPLATE_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"})
SELECTOR_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement."""


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document in a file."""
    with path.open(encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ValueError(f"{path}: every document must be a Kubernetes object with apiVersion and kind")
    return docs


def resource_id(resource: Resource) -> tuple[str, str, str]:
    meta = resource.get("metadata", {})
    return (resource["kind"], meta.get("namespace", ""), meta.get("name", ""))


def render(directory: Path) -> list[Resource]:
    """The resources `kustomize build directory` would print (for the supported subset)."""
    kustomization_path = directory / "kustomization.yaml"
    kustomization = yaml.safe_load(kustomization_path.read_text(encoding="utf-8")) or {}
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise UnsupportedKustomization(f"{kustomization_path}: unsupported fields {sorted(unsupported)}")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedKustomization(f"{kustomization_path}: kind must be Kustomization")

    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        if "://" in entry or entry.startswith(("github.com/", "git@")):
            raise UnsupportedKustomization(f"{kustomization_path}: remote resource {entry!r}")
        target = (directory / entry).resolve()
        if target.is_dir():
            resources.extend(render(target))
        elif target.is_file():
            resources.extend(load_documents(target))
        else:
            raise FileNotFoundError(f"{kustomization_path}: resource {entry!r} does not exist")
    resources = copy.deepcopy(resources)

    if "namespace" in kustomization:
        set_namespace(resources, kustomization["namespace"])
    if "commonLabels" in kustomization:
        add_labels(resources, kustomization["commonLabels"], selectors=True, templates=True)
    for spec in kustomization.get("labels", []):
        selectors = bool(spec.get("includeSelectors", False))
        templates = selectors or bool(spec.get("includeTemplates", False))
        add_labels(resources, spec.get("pairs", {}), selectors=selectors, templates=templates)
    if "commonAnnotations" in kustomization:
        add_annotations(resources, kustomization["commonAnnotations"])
    for image in kustomization.get("images", []):
        override_image(resources, image)

    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        rid = resource_id(resource)
        if rid in seen:
            raise ValueError(f"{kustomization_path}: duplicate resource {rid}")
        seen.add(rid)
    return resources


def set_namespace(resources: list[Resource], namespace: str) -> None:
    for resource in resources:
        if resource["kind"] not in CLUSTER_SCOPED_KINDS:
            resource.setdefault("metadata", {})["namespace"] = namespace


def _merge(target: dict[str, Any], key: str, values: dict[str, str]) -> None:
    target.setdefault(key, {}).update({k: str(v) for k, v in values.items()})


def add_labels(resources: list[Resource], labels: dict[str, str], *, selectors: bool, templates: bool) -> None:
    for resource in resources:
        kind = resource["kind"]
        spec = resource.get("spec", {})
        _merge(resource.setdefault("metadata", {}), "labels", labels)
        if templates:
            if kind in POD_TEMPLATE_KINDS and "template" in spec:
                _merge(spec["template"].setdefault("metadata", {}), "labels", labels)
            if kind == "CronJob":
                job = spec.setdefault("jobTemplate", {})
                _merge(job.setdefault("metadata", {}), "labels", labels)
                _merge(
                    job.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {}), "labels", labels
                )
        if selectors:
            if kind in SELECTOR_KINDS or kind == "PodDisruptionBudget":
                _merge(spec.setdefault("selector", {}), "matchLabels", labels)
            elif kind == "Job" and "selector" in spec:
                _merge(spec["selector"], "matchLabels", labels)
            elif kind == "Service":
                spec.setdefault("selector", {}).update({k: str(v) for k, v in labels.items()})


def add_annotations(resources: list[Resource], annotations: dict[str, str]) -> None:
    for resource in resources:
        _merge(resource.setdefault("metadata", {}), "annotations", annotations)
        for pod_template in pod_templates(resource):
            _merge(pod_template.setdefault("metadata", {}), "annotations", annotations)


def pod_templates(resource: Resource) -> Iterator[dict[str, Any]]:
    kind = resource["kind"]
    spec = resource.get("spec", {})
    if kind in POD_TEMPLATE_KINDS and "template" in spec:
        yield spec["template"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]


def pod_specs(resource: Resource) -> Iterator[dict[str, Any]]:
    if resource["kind"] == "Pod":
        yield resource["spec"]
    for template in pod_templates(resource):
        yield template["spec"]


def containers(resource: Resource, *, init: bool = True) -> Iterator[dict[str, Any]]:
    for spec in pod_specs(resource):
        yield from spec.get("containers", [])
        if init:
            yield from spec.get("initContainers", [])


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`registry:5000/org/name:tag@sha256:...` -> (name, tag, digest)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def override_image(resources: list[Resource], spec: dict[str, Any]) -> None:
    for resource in resources:
        for container in containers(resource):
            name, tag, digest = split_image(container["image"])
            if name != spec["name"]:
                continue
            new_name = spec.get("newName", name)
            if "digest" in spec:
                container["image"] = f"{new_name}@{spec['digest']}"
                continue
            new_tag = str(spec["newTag"]) if "newTag" in spec else tag
            image = new_name if new_tag is None else f"{new_name}:{new_tag}"
            container["image"] = image if digest is None or "newTag" in spec else f"{image}@{digest}"
