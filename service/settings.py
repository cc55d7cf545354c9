"""The one Settings class, read from the environment (and from mounted secret files).

Built once in `main()` and passed down; nothing reads the environment at import time.
Each command asks `settings.require(...)` for what it needs, so a missing or placeholder
secret stops start-up with one line naming the variable.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import ConfigError

DEFAULT_TRANSFORMS = (
    "transforms.shopee:normalise,"
    "transforms.shopee:skip_unpaid,"
    "transforms.shopee:require_fields,"
    "transforms.shopee:to_record"
)

DEFAULT_OPTIONAL_FIELDS = (
    "buyer_user_id,buyer_username,estimated_shipping_fee,recipient_address,actual_shipping_fee,"
    "goods_to_declare,note,note_update_time,item_list,pay_time,dropshipper,dropshipper_phone,"
    "split_up,buyer_cancel_reason,cancel_by,cancel_reason,actual_shipping_fee_confirmed,"
    "buyer_cpf_id,fulfillment_flag,pickup_done_time,package_list,shipping_carrier,"
    "payment_method,total_amount,invoice_data,order_chargeable_weight_gram,"
    "return_request_due_date,edt"
)

_PLACEHOLDER = re.compile(
    r"^(|changeme|change[-_ ]?me|replace[-_ ]?me|todo|placeholder|xxx+|\*+|none|null|"
    r"<.*>|\$\{.*\}|your[-_ ].*|example)$",
    re.IGNORECASE,
)


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def check_bootstrap_servers(value: str) -> str:
    """Comma list of host:port. A scheme prefix (`SASL_SSL://host:9092`, as cloud consoles
    show it) or a placeholder is refused with one line instead of a DNS error much later."""
    servers = [s.strip() for s in value.split(",") if s.strip()]
    if not servers or is_placeholder(value):
        raise ValueError("is empty or a placeholder; expected host:port[,host:port...]")
    for server in servers:
        if "://" in server:
            scheme = server.split("://", 1)[0]
            raise ValueError(
                f"{server!r}: drop the {scheme}:// prefix and give host:port only "
                "(SASL_SSL is switched on by KAFKA_API_KEY/KAFKA_API_SECRET)"
            )
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{server!r} is not host:port")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
    )

    # Kafka
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_api_key: SecretStr | None = None
    kafka_api_secret: SecretStr | None = None
    kafka_topic_marketplace_orders: str = "marketplace.orders"
    kafka_topic_dead_letter: str = "marketplace.orders.dlq"
    kafka_consumer_group: str = "marketplace-orders-processor"
    # Kafka security (docs/contract.md); service/kafka_client.py turns these into client options
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_ssl_ca_file: str | None = None
    kafka_ssl_cert_file: str | None = None
    kafka_ssl_key_file: str | None = None

    # Shopee
    shopee_partner_id: int | None = None
    shopee_partner_key: SecretStr | None = None
    shopee_push_key: SecretStr | None = None
    shopee_callback_url: str | None = None
    shopee_api_base_url: str = "https://partner.shopeemobile.com"
    shopee_response_optional_fields: str = DEFAULT_OPTIONAL_FIELDS
    shopee_timeout_seconds: float = Field(default=10.0, gt=0)

    # Postgres
    database_url: SecretStr | None = None

    # Flow control (consumer)
    batch_max_size: int = Field(default=50, ge=1, le=50)
    batch_timeout_seconds: float = Field(default=120.0, gt=0)
    shop_rate_limit_per_minute: int = Field(default=30, ge=1)
    max_concurrency: int = Field(default=10, ge=1)
    retry_max_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    token_refresh_margin_seconds: float = Field(default=300.0, ge=0)
    shutdown_grace_seconds: float = Field(default=25.0, gt=0)
    consumer_metrics_port: int = Field(default=9100, ge=0, le=65535)
    consumer_max_pending_records: int = Field(default=200_000, ge=1)
    kafka_startup_wait_seconds: float = Field(default=120.0, ge=0)

    # Ingest
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1)
    ingest_response_budget_seconds: float = Field(default=2.0, gt=0, lt=3.0)
    ingest_transforms: str = DEFAULT_TRANSFORMS
    ingest_outbox_enabled: bool = True
    ingest_outbox_reserve_seconds: float = Field(default=0.5, gt=0)
    outbox_relay_interval_seconds: float = Field(default=0.5, gt=0)

    # Recovery (python -m service recover)
    recover_lost_push_interval_seconds: float = Field(default=300.0, gt=0)
    recover_reconcile_interval_seconds: float = Field(default=1800.0, gt=0)
    recover_lookback_seconds: int = Field(default=3 * 86400, ge=60)
    recover_lag_seconds: int = Field(default=120, ge=0)
    recover_shop_calls_per_minute: int = Field(default=5, ge=1)
    recover_concurrency: int = Field(default=4, ge=1)
    recover_produce_timeout_seconds: float = Field(default=15.0, gt=0)
    recover_metrics_port: int = Field(default=9101, ge=0, le=65535)

    log_level: str = "INFO"

    # Console (SPEC 4.6): internal only; password users or a trusted header + allow-list
    console_users: SecretStr | None = None  # comma list of name:hash (console hash-password)
    console_trusted_header: str | None = None
    console_allowed_users: str = ""
    console_secret_key: SecretStr | None = None
    console_session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    console_ingest_url: str | None = None  # e.g. http://gateway-ingest:8080, for the ingest's /readyz
    console_secure_cookies: bool = False  # set true when a TLS proxy fronts the console

    @field_validator("shopee_callback_url")
    @classmethod
    def _strip_url(cls, v: str | None) -> str | None:
        return v.strip() if isinstance(v, str) else v

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, v: str) -> str:
        return check_bootstrap_servers(v)

    @field_validator("database_url", "kafka_api_key", "kafka_api_secret")
    @classmethod
    def _no_placeholder_secret(cls, v: SecretStr | None) -> SecretStr | None:
        # set but a placeholder (or empty): the k8s templates' <...> values must not reach a client
        if v is not None and is_placeholder(v.get_secret_value()):
            raise ValueError("is empty or a placeholder; set a real value or leave the variable out")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_dsn(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// or postgres:// URL")
        return v

    # -- derived -----------------------------------------------------------------------

    @property
    def push_key(self) -> SecretStr | None:
        """The key Shopee signs pushes with: SHOPEE_PUSH_KEY, else SHOPEE_PARTNER_KEY."""
        if self.shopee_push_key is not None and self.shopee_push_key.get_secret_value():
            return self.shopee_push_key
        return self.shopee_partner_key

    @property
    def transform_names(self) -> list[str]:
        return [n.strip() for n in self.ingest_transforms.split(",") if n.strip()]

    @property
    def optional_fields(self) -> list[str]:
        return [f.strip() for f in self.shopee_response_optional_fields.split(",") if f.strip()]

    def require(self, *names: str, purpose: str) -> None:
        """Raise ConfigError naming the first setting that is unset or a placeholder."""
        for name in names:
            value: Any = self.push_key if name == "shopee_push_key" else getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is None or (isinstance(value, str) and is_placeholder(value)):
                raise ConfigError(f"{name.upper()} is required for {purpose} and is unset or a placeholder")

    def kafka_client_options(self) -> dict[str, Any]:
        """aiokafka connection options (service.kafka_client.client_options)."""
        from service.kafka_client import client_options

        return client_options(self)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; SECRETS_DIR (e.g. a mounted k8s Secret) adds files."""
    secrets_dir = os.environ.get("SECRETS_DIR")
    try:
        if secrets_dir:
            return Settings(_secrets_dir=secrets_dir, **overrides)
        return Settings(**overrides)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        first = exc.errors()[0] if hasattr(exc, "errors") else None
        if first is not None:
            loc = ".".join(str(p) for p in first["loc"]).upper()
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{loc}: {message}") from None
        raise ConfigError(str(exc).splitlines()[0]) from None
