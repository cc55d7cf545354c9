-- Credentials per shop and the raw order table (docs/contract.md#tables).
-- partner_id is text: the seed's INSERT may pass it as a number or a string literal, and
-- an integer assigns to text implicitly, while a non-numeric string would not fit bigint.

CREATE TABLE IF NOT EXISTS merchant_shopee_config (
    id                       bigserial PRIMARY KEY,
    merchant_id              uuid NOT NULL,
    shop_id                  text NOT NULL UNIQUE,
    partner_id               text,
    access_token             text,
    refresh_token            text,
    is_active                boolean NOT NULL DEFAULT true,
    -- NULL expiry means "unknown": the token is used until Shopee rejects it
    access_token_expires_at  timestamptz NULL,
    refresh_token_expires_at timestamptz NULL,
    token_refreshed_at       timestamptz NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS shopee_orders_raw (
    id                  bigserial PRIMARY KEY,
    shop_id             text NOT NULL,
    order_sn            text NOT NULL,
    order_status        text,
    -- unix seconds, from Shopee's order detail (else the push); an older update never
    -- overwrites a newer one
    update_time         bigint,
    order_detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_id            text,
    record_timestamp_ms bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    processed_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shopee_orders_raw_shop_order_key UNIQUE (shop_id, order_sn)
);

-- the monitoring queries of docs/contract.md#tables filter on processed_at
CREATE INDEX IF NOT EXISTS shopee_orders_raw_processed_at_idx ON shopee_orders_raw (processed_at);
