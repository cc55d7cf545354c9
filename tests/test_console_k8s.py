"""k8s/console.yaml: internal only (ClusterIP, no Ingress), probed, scraped, fenced by its NetworkPolicy."""

from __future__ import annotations

from typing import Any

from tests.conftest import ROOT
from tests.k8s_render import Resource, render


def named(resources: list[Resource], kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def test_the_console_is_internal_only_and_fenced() -> None:
    resources = render(ROOT / "k8s")
    deployment = named(resources, "Deployment", "gateway-console")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = named(resources, "Service", "gateway-console")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    backends = [
        path["backend"]["service"]["name"]
        for ingress in resources
        if ingress["kind"] == "Ingress"
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert "gateway-console" not in backends
    policy = named(resources, "NetworkPolicy", "gateway-console")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_the_console_port_matches_args_probes_scrape_and_service() -> None:
    deployment = named(render(ROOT / "k8s"), "Deployment", "gateway-console")
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    args = container["args"]
    assert args[0] == "console"
    port = int(args[args.index("--port") + 1])
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", port)]
    assert int(template["metadata"]["annotations"]["prometheus.io/port"]) == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"secretRef": {"name": "gateway-console"}} in container["envFrom"]
