"""Drift between the manifests and Settings: every environment variable the manifests set
is a real setting, and every setting a command requires reaches the deployable that runs it.
"""

from __future__ import annotations

from service.settings import Settings, is_placeholder
from tests.k8s_checks import (
    by_kind,
    command_of,
    config_sources,
    container_env,
    missing_required,
    unknown_env_names,
    workloads,
)
from tests.k8s_render import (
    Resource,
    containers,
)

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
