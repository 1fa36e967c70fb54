-- Incidents: one row per declared incident, its roles, its timeline and its reminder claims.
-- status: investigating → identified → monitoring → resolved (and reopened).
CREATE TABLE incidents (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id      uuid        NOT NULL UNIQUE,
    title               text        NOT NULL,
    slug                text        NOT NULL,
    severity            text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('investigating', 'identified', 'monitoring', 'resolved', 'reopened')),
    services            text[]      NOT NULL DEFAULT '{}',
    description         text        NOT NULL DEFAULT '',
    declared_by_id      bigint      NOT NULL,
    declared_by_name    text        NOT NULL,
    guild_id            bigint,
    -- Where /incident declare was typed, and the interaction (for the summary's link).
    declared_in_channel bigint,
    declared_interaction bigint,
    started_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    resolution          text,
    -- The last status update (reminders count from here).
    last_update_at      timestamptz NOT NULL DEFAULT now(),
    -- Filled in by whoever creates the channel (declare, or the reconciler after a crash).
    channel_id          bigint UNIQUE,
    -- The summary's post in the channel (an outbox row: edits refer to it), and whether it
    -- has been pinned.
    summary_outbox_id   bigint REFERENCES outbox (id),
    summary_pinned      boolean     NOT NULL DEFAULT false,
    -- The topic last set on the channel: the reconciler sets it again when it differs.
    topic_set           text,
    -- Moved or locked after resolve, as `[incidents] archive` says.
    archived            boolean     NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX incidents_open_idx ON incidents (started_at) WHERE status <> 'resolved';

-- Who holds which role (commander, comms, scribe, ...): one member per role.
CREATE TABLE incident_roles (
    incident_id  bigint      NOT NULL REFERENCES incidents (id),
    role         text        NOT NULL,
    user_id      bigint      NOT NULL,
    user_name    text        NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, role)
);

-- The incident's own timeline: every change, role assignment, note and status update.
CREATE TABLE incident_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     bigint      NOT NULL REFERENCES incidents (id),
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text        NOT NULL,
    actor_id        bigint      NOT NULL,
    actor_name      text        NOT NULL,
    text            text        NOT NULL DEFAULT '',
    audit_event_id  bigint
);

CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, at, id);

-- A reminder fires once per (incident, kind, due time), across replicas and restarts.
CREATE TABLE incident_reminders (
    incident_id  bigint      NOT NULL REFERENCES incidents (id),
    kind         text        NOT NULL,
    due_at       timestamptz NOT NULL,
    outbox_id    bigint,
    fired_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, kind, due_at)
);
