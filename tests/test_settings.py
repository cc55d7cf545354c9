"""Settings: the environment, mounted secret files, placeholders, the push-key fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting from the machine running the tests leaks in."""
    for name in [*Settings.model_fields, "secrets_dir"]:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_defaults_are_the_contracts() -> None:
    s = load_settings()
    assert (s.kafka_bootstrap_servers, s.kafka_topic_marketplace_orders, s.kafka_topic_dead_letter) == (
        "localhost:9092",
        "marketplace.orders",
        "marketplace.orders.dlq",
    )
    assert (s.batch_max_size, s.batch_timeout_seconds, s.shop_rate_limit_per_minute, s.max_concurrency) == (
        50,
        120.0,
        30,
        10,
    )


def test_environment_variables_are_read_whatever_their_case(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("BATCH_MAX_SIZE", "7")
    clean_environment.setenv("shopee_callback_url", " https://hooks.example.com/shopee ")
    s = load_settings()
    assert s.batch_max_size == 7
    assert s.shopee_callback_url == "https://hooks.example.com/shopee"


def test_secrets_dir_files_supply_settings_and_the_environment_wins(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "shopee_partner_key").write_text("key-from-file")
    (tmp_path / "database_url").write_text("postgresql://file@db/gateway")
    clean_environment.setenv("SECRETS_DIR", str(tmp_path))
    clean_environment.setenv("DATABASE_URL", "postgresql://env@db/gateway")
    s = load_settings()
    assert s.shopee_partner_key is not None and s.shopee_partner_key.get_secret_value() == "key-from-file"
    assert s.database_url is not None and s.database_url.get_secret_value() == "postgresql://env@db/gateway"


def test_without_secrets_dir_no_file_is_read(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "shopee_partner_key").write_text("key-from-file")
    clean_environment.chdir(tmp_path)
    assert load_settings().shopee_partner_key is None


@pytest.mark.parametrize("value", ["", "  ", "changeme", "CHANGE_ME", "<partner key>", "${KEY}", "your-key", "xxxx"])
def test_a_placeholder_secret_stops_start_up_naming_the_variable(value: str) -> None:
    s = Settings(shopee_partner_key=value, database_url="postgresql://db/gateway", shopee_partner_id=1)
    with pytest.raises(ConfigError) as raised:
        s.require("database_url", "shopee_partner_id", "shopee_partner_key", purpose="the consumer")
    assert str(raised.value) == "SHOPEE_PARTNER_KEY is required for the consumer and is unset or a placeholder"


def test_a_real_looking_secret_passes() -> None:
    Settings(shopee_partner_key="4e6f7420612072656164206b6579").require("shopee_partner_key", purpose="x")


def test_a_missing_setting_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^DATABASE_URL is required for the consumer"):
        Settings().require("database_url", purpose="the consumer")


def test_the_push_key_falls_back_to_the_partner_key() -> None:
    fallback = Settings(shopee_partner_key="partner").push_key
    assert fallback is not None and fallback.get_secret_value() == "partner"
    empty = Settings(shopee_partner_key="partner", shopee_push_key="").push_key
    assert empty is not None and empty.get_secret_value() == "partner"
    own = Settings(shopee_partner_key="partner", shopee_push_key="live-push").push_key
    assert own is not None and own.get_secret_value() == "live-push"


def test_the_push_key_requirement_is_met_by_the_partner_key_alone() -> None:
    Settings(shopee_partner_key="partner").require("shopee_push_key", purpose="the ingest service")
    with pytest.raises(ConfigError, match=r"^SHOPEE_PUSH_KEY"):
        Settings().require("shopee_push_key", purpose="the ingest service")


def test_a_value_of_the_wrong_type_is_one_line_naming_the_variable(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("BATCH_MAX_SIZE", "0")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("BATCH_MAX_SIZE: ") and "\n" not in message


def test_kafka_is_plaintext_without_an_api_key() -> None:
    options = Settings(kafka_bootstrap_servers="b:9092").kafka_client_options()
    assert options == {"bootstrap_servers": "b:9092", "security_protocol": "PLAINTEXT"}


def test_an_api_key_means_sasl_ssl_plain() -> None:
    options = Settings(kafka_api_key="k", kafka_api_secret="s").kafka_client_options()
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "PLAIN")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("k", "s")


def test_an_api_key_without_its_secret_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"^KAFKA_API_SECRET"):
        Settings(kafka_api_key="k").kafka_client_options()
