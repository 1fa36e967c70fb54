-- A refusal by a rule in force (a freeze window, an incident's deploy freeze) is recorded as
-- `refused`, apart from `conflict` (the state of things: a lock, a deploy already running).
-- Existing rows keep their outcome, so no event's hash changes: the chain hashes the outcome
-- text as stored. NOT VALID + VALIDATE checks old rows without blocking writers meanwhile.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check CHECK (outcome IN (
    'ok', 'denied', 'invalid', 'conflict', 'refused', 'error',
    'requested', 'approved', 'started', 'succeeded', 'failed',
    'rejected', 'expired', 'cancelled')) NOT VALID;
ALTER TABLE audit_events VALIDATE CONSTRAINT audit_events_outcome_check;
