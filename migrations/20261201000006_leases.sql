-- One lease mechanism for every replica-exclusive job (commands/src/lease.rs): the holder
-- renews `expires_at`; after it passes, another replica may take the lease over.
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
