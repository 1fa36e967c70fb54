-- Messages opsbot posts outside an interaction reply. Written in the same transaction
-- as the audit event that caused them; delivered by the dispatcher (bot/src/dispatch.rs).
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    channel_id       bigint      NOT NULL,
    -- The body of Discord's "create message" request (content, embeds, components).
    payload          jsonb       NOT NULL,
    -- Sent as Discord's `nonce` with `enforce_nonce`, so a retried delivery never posts twice.
    nonce            text        NOT NULL UNIQUE,
    audit_event_id   bigint,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    -- Failed delivery attempts (5xx, timeouts, ...): the row is dead-lettered after N.
    attempts         integer     NOT NULL DEFAULT 0,
    -- 429 answers: not the message's fault, so they never count toward dead-lettering.
    rate_limited     integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher that claimed the row owns it until then; after that another may retry it.
    leased_until     timestamptz,
    last_error       text,
    sent_at          timestamptz,
    message_id       bigint
);

CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE status = 'pending';
