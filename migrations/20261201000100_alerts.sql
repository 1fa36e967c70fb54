-- Alerts from Alertmanager: one row per alert group per channel per occurrence (a group that
-- resolves and fires again gets a new row, and so a new message), the alerts of each, and
-- the Discord message that shows it (posted through the outbox: `post_outbox_id` is the
-- outbox row that posts it; its Discord id is `outbox.message_id` once delivered).
CREATE TABLE alert_groups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_key text NOT NULL,
    channel_id bigint NOT NULL,
    -- 'firing' while any alert of the group fires, then 'resolved' (for good: a re-fire is a new row)
    status text NOT NULL CHECK (status IN ('firing', 'resolved')),
    receiver text NOT NULL DEFAULT '',
    group_labels jsonb NOT NULL DEFAULT '{}',
    common_labels jsonb NOT NULL DEFAULT '{}',
    common_annotations jsonb NOT NULL DEFAULT '{}',
    external_url text NOT NULL DEFAULT '',
    -- index of the `[[alerts.routes]]` entry that routed the group
    route_index integer NOT NULL DEFAULT 0,
    post_outbox_id bigint REFERENCES outbox (id),
    acked_by_id bigint,
    acked_by_name text,
    acked_at timestamptz,
    silence_id text,
    silenced_by_name text,
    silenced_until timestamptz,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
-- One living message per group per channel.
CREATE UNIQUE INDEX alert_groups_one_firing ON alert_groups (group_key, channel_id) WHERE status = 'firing';
CREATE INDEX alert_groups_newest ON alert_groups (first_seen_at DESC, id DESC);

-- Each alert occurrence: a fingerprint that fires again after it resolved (a new startsAt)
-- is a new row.
CREATE TABLE alert_instances (
    group_id bigint NOT NULL REFERENCES alert_groups (id),
    fingerprint text NOT NULL,
    starts_at timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('firing', 'resolved')),
    ends_at timestamptz,
    labels jsonb NOT NULL DEFAULT '{}',
    annotations jsonb NOT NULL DEFAULT '{}',
    generator_url text NOT NULL DEFAULT '',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, fingerprint, starts_at)
);
CREATE INDEX alert_instances_firing ON alert_instances (status, starts_at DESC);
