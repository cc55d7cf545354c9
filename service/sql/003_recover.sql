-- Recovery (python -m service recover): per-shop reconciliation checkpoints and a run log.

-- reconciled_until: unix seconds up to which the shop's orders were compared with Shopee
-- and everything missing or stale was made durable. rejected_refresh_token_sha256: set
-- when Shopee refused the shop's refresh token for good; the shop is skipped until its
-- stored refresh token changes (re-authorised), instead of failing again every sweep.
CREATE TABLE IF NOT EXISTS recover_checkpoints (
    shop_id                       text PRIMARY KEY,
    reconciled_until              bigint,
    last_error                    text,
    last_error_at                 timestamptz,
    rejected_refresh_token_sha256 text,
    updated_at                    timestamptz NOT NULL DEFAULT now()
);

-- One row per sweep that got its lock. finished_at stays NULL for a sweep that is still
-- running or that died (e.g. SIGKILL); status: running, ok, errors (some shops or
-- messages failed), failed (the sweep stopped early).
CREATE TABLE IF NOT EXISTS recover_runs (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('lost_push', 'reconcile')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running',
    seen        integer NOT NULL DEFAULT 0,
    produced    integer NOT NULL DEFAULT 0,
    errors      integer NOT NULL DEFAULT 0,
    detail      text NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS recover_runs_kind_started_idx ON recover_runs (kind, started_at DESC);
