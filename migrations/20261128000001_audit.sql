-- The audit trail: one row per command invocation and per step of a long action.
-- Rows are inserted freely and concurrently; a single sealer (advisory lock) later
-- appends each committed event to `audit_chain` in batches, hash-chained.
-- Neither table may ever be updated or deleted from: triggers below refuse it.

CREATE TABLE audit_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id        bigint      NOT NULL,
    actor_name      text        NOT NULL,
    source          text        NOT NULL CHECK (source IN ('discord', 'shell', 'web', 'scheduler', 'webhook')),
    guild_id        bigint,
    channel_id      bigint,
    interaction_id  bigint UNIQUE,
    command         text        NOT NULL,
    args            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    outcome         text        NOT NULL CHECK (outcome IN (
                        'ok', 'denied', 'invalid', 'conflict', 'error',
                        'requested', 'approved', 'started', 'succeeded', 'failed',
                        'rejected', 'expired', 'cancelled')),
    detail          text        NOT NULL DEFAULT '',
    correlation_id  uuid
);

CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, id);
CREATE INDEX audit_events_command_idx ON audit_events (command, id);
CREATE INDEX audit_events_correlation_idx ON audit_events (correlation_id) WHERE correlation_id IS NOT NULL;

-- Events committed but not yet sealed. Appended in the same statement as the event,
-- emptied by the sealer in the transaction that seals them: a queue, so an event whose
-- transaction commits late (ids are not commit order) is sealed by a later batch.
CREATE TABLE audit_unsealed (
    event_id bigint PRIMARY KEY
);

-- The chain: position is dense (1, 2, 3, ...) and is the total order of the trail.
-- hash = sha256(prev_hash || canonical(event)), prev_hash of position 1 is 32 zero bytes.
CREATE TABLE audit_chain (
    position   bigint PRIMARY KEY,
    event_id   bigint      NOT NULL UNIQUE,
    prev_hash  bytea       NOT NULL,
    hash       bytea       NOT NULL,
    sealed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
