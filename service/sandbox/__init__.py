"""A local Shopee Open Platform: API simulator and signed push sender (never for production).

config.py      SandboxConfig, Faults, the clock type, API paths
tokens.py      access/refresh tokens: deterministic initial pair, rotation, grace
orders.py      known orders, auto-orders, the order detail Shopee would return
stats.py       calls per shop (aligned minutes, rolling 60 s), errors, refreshes
state.py       SandboxState: all of the above plus lost pushes and rate windows
api.py         create_sandbox_app(): Shopee's endpoints, behind one gate
control.py     /sandbox/* endpoints for tests and benchmarks
plan.py        PushConfig, the push plan, the Ledger
push.py        send_pushes(): signed delivery with Shopee's retries
demo_shops.py  demo shop credentials into merchant_shopee_config
cli.py         python -m service sandbox serve | push | demo-shops
"""
