"""The companion consumer: Kafka -> per-shop batches -> throttle -> Shopee -> Postgres.

Data flows one way: runner (fetch, commit) -> batcher -> throttle -> worker (credentials
-> Shopee -> store, or dead letter) -> offsets.
"""
