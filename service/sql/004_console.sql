-- The operations console (SPEC 4.6): who did what, and what has been done to dead letters.
-- Dead letters themselves stay in Kafka; these rows only remember the console's actions.

CREATE TABLE IF NOT EXISTS console_audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,          -- replay, acknowledge, login, ...
    filter  jsonb NOT NULL DEFAULT '{}'::jsonb,
    count   integer NOT NULL DEFAULT 0,
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS console_audit_at_idx ON console_audit (at DESC);

-- A letter is claimed here before it is replayed: a second click (or a second replica)
-- finds the row and does not replay it again.
CREATE TABLE IF NOT EXISTS console_dead_letter_replays (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    replayed_at  timestamptz NOT NULL DEFAULT now(),
    replayed_by  text NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);

-- A reason group an operator has looked at (Hookdeck's "acknowledged" issue state).
CREATE TABLE IF NOT EXISTS console_reason_acks (
    topic            text NOT NULL,
    reason           text NOT NULL,
    acknowledged_at  timestamptz NOT NULL DEFAULT now(),
    acknowledged_by  text NOT NULL,
    PRIMARY KEY (topic, reason)
);
