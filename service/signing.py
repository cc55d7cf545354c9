"""Shopee signatures (docs/contract.md: push signature, API calls), as pure functions of key and message.

HMAC comes from `cryptography`; comparison is constant-time.
"""

from __future__ import annotations

import hmac as _stdlib_hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC


def hmac_sha256_hex(key: bytes, message: bytes) -> str:
    mac = HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize().hex()


def push_signature(key: bytes, callback_url: str, raw_body: bytes) -> str:
    """Lowercase hex HMAC-SHA256(key, callback_url + "|" + raw_body)."""
    return hmac_sha256_hex(key, callback_url.encode() + b"|" + raw_body)


class PushVerifier:
    """verify_push for one key and callback URL, with the HMAC of the URL prefix computed
    once: per push only the body is hashed (half the cost of a fresh HMAC)."""

    def __init__(self, key: bytes, callback_url: str) -> None:
        self._prefix = HMAC(key, hashes.SHA256())
        self._prefix.update(callback_url.encode() + b"|")

    def __call__(self, raw_body: bytes, authorization: str | None) -> bool:
        if not authorization:
            return False
        mac = self._prefix.copy()
        mac.update(raw_body)
        return _stdlib_hmac.compare_digest(mac.finalize().hex().encode(), authorization.encode("utf-8", "replace"))


def verify_push(key: bytes, callback_url: str, raw_body: bytes, authorization: str | None) -> bool:
    """True when `authorization` is exactly the push signature of `raw_body`.

    The URL is the one registered with Shopee (from settings), never one rebuilt from the
    request, and the body is the bytes received, never re-serialised. The header must be
    the lowercase hex digest: Shopee sends it that way, so anything else is not Shopee.
    """
    return PushVerifier(key, callback_url)(raw_body, authorization)


def api_sign(
    partner_key: bytes,
    partner_id: int,
    api_path: str,
    timestamp: int,
    access_token: str = "",
    shop_id: int | str = "",
) -> str:
    """`sign` for Shopee API calls: shop-level when token and shop are given, else public."""
    base = f"{partner_id}{api_path}{timestamp}{access_token}{shop_id}"
    return hmac_sha256_hex(partner_key, base.encode())


def constant_time_equal(a: str, b: str) -> bool:
    return _stdlib_hmac.compare_digest(a.encode(), b.encode())
