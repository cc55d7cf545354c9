"""The gateway's errors, each saying whether retrying can help.

    GatewayError (retriable: bool)
     ├── ConfigError            bad or missing setting; stops start-up      (no)
     ├── SignatureError         push signature missing or wrong -> 401      (no)
     ├── PayloadError           signed but unusable push -> dead letter     (no)
     ├── SinkUnavailable        neither Kafka nor the outbox took a record  (yes)
     ├── ShopeeError            a Shopee API call failed
     │    ├── ShopeeTransient   network, timeout, 5xx, error_server         (yes)
     │    │    └── ShopeeRateLimited  429 / "too many requests"           (yes)
     │    ├── ShopeeAuthError   access token rejected: refresh, then retry  (yes)
     │    └── ShopeePermanent   error_param, error_permission, ...          (no)
     ├── CredentialsError       shop unknown/inactive, refresh token dead   (no)
     ├── StoreError             Postgres unavailable or failed              (yes)
     └── DependencyUnavailable  Kafka/Postgres unreachable at start-up      (yes)

The consumer chooses between retrying and dead-lettering by `retriable` alone.
"""

from __future__ import annotations


class GatewayError(Exception):
    retriable: bool = False
    #: short, stable, metric-safe reason (used as dead-letter reason and metric label)
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(GatewayError):
    reason = "config"


class SignatureError(GatewayError):
    reason = "bad_signature"


class PayloadError(GatewayError):
    reason = "unusable_payload"


class SinkUnavailable(GatewayError):
    retriable = True
    reason = "sink_unavailable"


class ShopeeError(GatewayError):
    reason = "shopee_error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        shopee_error: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.shopee_error = shopee_error
        self.status_code = status_code


class ShopeeTransient(ShopeeError):
    retriable = True
    reason = "shopee_transient"


class ShopeeRateLimited(ShopeeTransient):
    reason = "shopee_rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_seconds = retry_after_seconds


class ShopeeAuthError(ShopeeError):
    retriable = True
    reason = "shopee_auth"


class ShopeePermanent(ShopeeError):
    reason = "shopee_permanent"


class CredentialsError(GatewayError):
    reason = "credentials"


class StoreError(GatewayError):
    retriable = True
    reason = "store_unavailable"


class DependencyUnavailable(GatewayError):
    """A command could not reach Kafka or Postgres to start: one line, exit code 3."""

    retriable = True
    reason = "dependency_unavailable"
