-- The ingest service's fallback outbox (docs/contract.md#ingest-durability): pushes Kafka could not take in time.
-- Rows are relayed to Kafka oldest first (id order) and deleted once Kafka acknowledged.
CREATE TABLE IF NOT EXISTS gateway_outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea NOT NULL,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
