-- Switchboard's transactional outbox in PostgreSQL (docs/outbox.md). PostgreSQL 11 or later.
-- Apply it in one transaction, e.g. `psql -1 -f 0001_switchboard_outbox.sql`, or copy it into
-- your own migrations. It can be applied again (it changes nothing that exists).
--
-- The application inserts a row into switchboard_outbox in the same transaction as its
-- business change; Switchboard ([outbox.postgres] in its configuration) publishes the row to
-- `topic`, in id order within each topic, and then deletes it. A row it cannot publish (a bad
-- topic, data that is not JSON, a key over 64 bytes, ...) is moved to
-- switchboard_outbox_failed with the reason, and never holds up the rows behind it.
--
-- Other names: set `table`, `failed_table` and `channel` under [outbox.postgres] and change
-- them here alike.

CREATE TABLE IF NOT EXISTS switchboard_outbox (
    id         bigserial   PRIMARY KEY,
    -- A Switchboard topic: `/`-separated segments of [A-Za-z0-9_.:@-], at most 255 bytes.
    topic      text        NOT NULL,
    -- The publication's data: JSON text (json or jsonb work too: it is read as data::text).
    data       text        NOT NULL,
    -- The event name carried with the delivery (1 to 128 bytes), if any.
    event      text        NULL,
    -- The idempotency key (1 to 64 bytes); without it Switchboard uses `outbox:<id>`. Where the
    -- topic keeps history, a publication whose key it has already seen is not delivered again.
    key        text        NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Rows moved aside: the row as it was, when and why. `reason` is one of bad_topic, bad_data,
-- bad_key, bad_event, too_large, refused; `detail` says more.
CREATE TABLE IF NOT EXISTS switchboard_outbox_failed (
    id         bigint      PRIMARY KEY,
    topic      text        NULL,
    data       text        NULL,
    event      text        NULL,
    key        text        NULL,
    created_at timestamptz NULL,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    reason     text        NOT NULL,
    detail     text        NULL
);

-- Wakes the consumer (LISTEN switchboard_outbox) at each commit that inserted rows: one
-- notification per statement, and PostgreSQL folds the identical ones of a transaction into
-- one. Without it Switchboard still reads the table every poll_interval_ms.
CREATE OR REPLACE FUNCTION switchboard_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchboard_outbox', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS switchboard_outbox_notify ON switchboard_outbox;
CREATE TRIGGER switchboard_outbox_notify
    AFTER INSERT ON switchboard_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION switchboard_outbox_notify();
