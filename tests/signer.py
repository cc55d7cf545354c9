"""Shopee signatures written again from the contract, independently of service.signing.

HMAC-SHA256 is built here from hashlib's SHA-256 (RFC 2104: H(K^opad || H(K^ipad || m))),
and the base strings from the contract's words: a push is signed over
`callback_url + "|" + raw_body`; an API call over `partner_id + api_path + timestamp`,
followed by `access_token + shop_id` for shop-level calls. The tests sign with this, so a
wrong base string or key handling in the service fails them, not only the fixed vectors.
"""

from __future__ import annotations

import hashlib

BLOCK = 64  # SHA-256's block size in bytes


def hmac_sha256(key: bytes, message: bytes) -> str:
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).hexdigest()


def push_authorization(key: str, callback_url: str, raw_body: bytes) -> str:
    return hmac_sha256(key.encode(), callback_url.encode() + b"|" + raw_body)


def api_signature(
    partner_key: str, partner_id: int, api_path: str, timestamp: int, token: str = "", shop: str = ""
) -> str:
    return hmac_sha256(partner_key.encode(), f"{partner_id}{api_path}{timestamp}{token}{shop}".encode())
