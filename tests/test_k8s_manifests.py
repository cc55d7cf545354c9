"""The Kubernetes manifests, checked without a cluster (helpers in tests/k8s_checks.py):
every manifest in k8s/ (and the Secret template) validates, strictly, against the schema
of KUBERNETES_VERSION; the kustomization renders (tests/k8s_render.py, a small
`kustomize build`), the result validates, and the image override, labels and namespace
apply.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate_utils

from tests.k8s_checks import (
    CONSOLE_SECRET_TEMPLATE,
    IMAGE_NAME,
    K8S,
    KUBERNETES_VERSION,
    SECRET_TEMPLATE,
    by_kind,
    kustomization,
    manifest_files,
    named,
    schema_errors,
)
from tests.k8s_render import (
    Resource,
    UnsupportedKustomization,
    containers,
    load_documents,
    pod_templates,
    render,
    split_image,
)

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
