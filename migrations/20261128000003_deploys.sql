-- Deploys: one row per deploy or rollback, through its states:
-- requested → approved → running → succeeded | failed | cancelled; requested → rejected | expired.
CREATE TABLE deploys (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id       uuid        NOT NULL UNIQUE,
    service              text        NOT NULL,
    environment          text        NOT NULL,
    version              text        NOT NULL,
    state                text        NOT NULL CHECK (state IN ('requested', 'approved', 'running', 'succeeded', 'failed', 'cancelled', 'rejected', 'expired')),
    is_rollback          boolean     NOT NULL DEFAULT false,
    rollback_of          bigint      REFERENCES deploys (id),
    reason               text        NOT NULL DEFAULT '',
    freeze_overridden    boolean     NOT NULL DEFAULT false,
    requested_by_id      bigint      NOT NULL,
    requested_by_name    text        NOT NULL,
    requested_at         timestamptz NOT NULL DEFAULT now(),
    approvals_required   integer     NOT NULL DEFAULT 0,
    approval_expires_at  timestamptz,
    started_at           timestamptz,
    finished_at          timestamptz,
    backend              text        NOT NULL,
    -- What the backend needs to resume tracking after a restart (e.g. the GitHub run id).
    checkpoint           jsonb,
    link                 text,
    detail               text        NOT NULL DEFAULT '',
    -- Where the deploy was asked for, and its status message there (edited as it progresses).
    guild_id             bigint,
    channel_id           bigint,
    status_message_id    bigint,
    thread_id            bigint,
    -- The replica tracking a running deploy renews this; another takes over once it lapses.
    tracked_until        timestamptz,
    -- Webhook backends: the outcome must be reported before this.
    callback_deadline    timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One deploy at a time per service and environment: a second request is refused.
CREATE UNIQUE INDEX deploys_one_active_idx ON deploys (service, environment)
    WHERE state IN ('requested', 'approved', 'running');
CREATE INDEX deploys_history_idx ON deploys (service, environment, id DESC);
CREATE INDEX deploys_active_idx ON deploys (state) WHERE state IN ('requested', 'approved', 'running');

-- Approvals and rejections: one decision per approver per deploy.
CREATE TABLE deploy_approvals (
    deploy_id      bigint      NOT NULL REFERENCES deploys (id),
    approver_id    bigint      NOT NULL,
    approver_name  text        NOT NULL,
    decision       text        NOT NULL CHECK (decision IN ('approve', 'reject')),
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deploy_id, approver_id)
);

-- Locks: while one holds, deploys of that service to that environment are refused.
CREATE TABLE deploy_locks (
    service          text        NOT NULL,
    environment      text        NOT NULL,
    locked_by_id     bigint      NOT NULL,
    locked_by_name   text        NOT NULL,
    reason           text        NOT NULL,
    locked_at        timestamptz NOT NULL DEFAULT now(),
    -- NULL: until unlocked.
    until_at         timestamptz,
    PRIMARY KEY (service, environment)
);

-- Outbox: besides posting, edit a message (a deploy's status message).
ALTER TABLE outbox ADD COLUMN edit_message_id bigint;
