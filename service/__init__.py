"""Marketplace webhook gateway: Shopee pushes in, enriched order rows in Postgres out."""

__version__ = "0.1.0"
