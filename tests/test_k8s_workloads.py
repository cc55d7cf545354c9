"""Every workload in the rendered manifests is hardened (probes, requests and limits,
non-root read-only container) and wired up: commands, ports, selectors, replicas, grace.
"""

from __future__ import annotations

import copy

from service.__main__ import COMMANDS
from service.settings import Settings
from tests.k8s_checks import (
    INGEST_PORT,
    K8S,
    KAFKA_PARTITIONS,
    arg_value,
    by_kind,
    command_of,
    config_sources,
    container_env,
    named,
    port_number,
    workload_problems,
    workloads,
)
from tests.k8s_render import (
    Resource,
    containers,
    load_documents,
)

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
        assert port_number(container, container[probe]["httpGet"]["port"]) == INGEST_PORT
    service = named(rendered, "Service", "gateway-ingest")
    (port,) = service["spec"]["ports"]
    assert port_number(container, port["targetPort"]) == INGEST_PORT
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
    assert port_number(container, container["livenessProbe"]["httpGet"]["port"]) == metrics_port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_migrate_job_is_bounded(rendered: list[Resource]) -> None:
    job = named(rendered, "Job", "gateway-migrate")
    assert 0 < job["spec"]["backoffLimit"] <= 6
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
