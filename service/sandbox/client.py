"""Signed query strings for calling the sandbox (or Shopee) by hand: tests, benchmarks, demos."""

from __future__ import annotations

from service.signing import api_sign


def public_query(partner_id: int, partner_key: str, path: str, timestamp: int) -> dict[str, str]:
    """Common parameters of a public call (token and push endpoints)."""
    sign = api_sign(partner_key.encode(), partner_id, path, timestamp)
    return {"partner_id": str(partner_id), "timestamp": str(timestamp), "sign": sign}


def shop_query(
    partner_id: int, partner_key: str, path: str, timestamp: int, access_token: str, shop_id: int
) -> dict[str, str]:
    """Common parameters of a shop-level call (docs/contract.md#api-calls)."""
    sign = api_sign(partner_key.encode(), partner_id, path, timestamp, access_token, shop_id)
    return {
        "partner_id": str(partner_id),
        "timestamp": str(timestamp),
        "access_token": access_token,
        "shop_id": str(shop_id),
        "sign": sign,
    }
