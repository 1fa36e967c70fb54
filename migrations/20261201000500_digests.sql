-- Scheduled digests: each fire time of each digest is claimed once, across replicas and
-- restarts, in the same transaction as its outbox row and audit event.
-- status: posted (an outbox row), empty (nothing to report, `when_empty = "skip"`),
-- skipped (missed by more than the digest's grace; recorded so the skip is audited once).
CREATE TABLE digest_runs (
    digest          text        NOT NULL,
    fire_at         timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'posted' CHECK (status IN ('posted', 'empty', 'skipped')),
    window_start    timestamptz NOT NULL,
    outbox_id       bigint REFERENCES outbox (id),
    audit_event_id  bigint,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (digest, fire_at)
);
