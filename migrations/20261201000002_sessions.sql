-- Dashboard sessions, one row per login (bot/src/web/auth/session.rs). The signed session
-- cookie names its row; a session works while the row is neither expired nor revoked
-- (logout) and, for a token login, while a configured dashboard token still has the
-- fingerprint kept here. Never the token itself: only its SHA-256.
CREATE TABLE dashboard_sessions (
    id                 uuid        PRIMARY KEY,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    how                text        NOT NULL CHECK (how IN ('token', 'discord')),
    actor_id           bigint      NOT NULL,
    actor_name         text        NOT NULL,
    token_fingerprint  bytea       CHECK (token_fingerprint IS NULL OR length(token_fingerprint) = 32),
    CHECK ((how = 'token') = (token_fingerprint IS NOT NULL))
);

CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);
