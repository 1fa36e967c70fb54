-- Plausibility of the audit chain (issue 8, item 4): times the database stamps itself, so a
-- role that may only INSERT cannot choose them, and a record of the events the sealer refused.

-- When the event was queued for sealing. `append` queues in the same statement that inserts
-- the event, so a genuine event's `at` is within microseconds of it; an `at` long before it
-- is backdated. The trigger overrides any value an INSERT gives. Rows queued before this
-- migration keep NULL (no queue time was recorded for them).
ALTER TABLE audit_unsealed ADD COLUMN queued_at timestamptz;
ALTER TABLE audit_unsealed ALTER COLUMN queued_at SET DEFAULT clock_timestamp();

CREATE FUNCTION audit_stamp_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.queued_at := clock_timestamp();
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_unsealed_stamp BEFORE INSERT ON audit_unsealed
    FOR EACH ROW EXECUTE FUNCTION audit_stamp_queued();

-- The chain keeps the queue time of each event (copied by the database from the queue, so
-- `verify` can judge backdating long after the queue entry is gone), and the database's own
-- sealing time. A chain row for an event that was never queued is refused: chaining goes
-- through the queue, where the queue time is stamped. Rows sealed before this migration
-- have a NULL queue time.
ALTER TABLE audit_chain ADD COLUMN queued_at timestamptz;

CREATE FUNCTION audit_stamp_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT u.queued_at INTO NEW.queued_at FROM audit_unsealed u WHERE u.event_id = NEW.event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % is not queued for sealing: only queued events are chained', NEW.event_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.sealed_at := clock_timestamp();
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_chain_stamp BEFORE INSERT ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_stamp_sealed();

-- Events the sealer would not chain (an id the identity sequence never issued, a backdated or
-- future-dated `at`), with why. `opsbot audit verify` reports every one of them.
CREATE TABLE audit_refused (
    event_id    bigint      PRIMARY KEY,
    reason      text        NOT NULL,
    refused_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER audit_refused_append_only BEFORE UPDATE OR DELETE ON audit_refused
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_refused_no_truncate BEFORE TRUNCATE ON audit_refused
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
