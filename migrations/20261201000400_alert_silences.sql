-- Silences opsbot created in Alertmanager (from an alert message's Silence picker, an
-- "Ack + silence until resolved", or `/alerts silence`), so that opsbot can show who
-- silenced what and expire "until resolved" silences itself when their group resolves.
CREATE TABLE alert_silences (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Alertmanager's silenceID
    silence_id text NOT NULL UNIQUE,
    -- the group whose message made it (NULL for `/alerts silence`)
    group_id bigint REFERENCES alert_groups (id),
    matchers jsonb NOT NULL,
    created_by_id bigint NOT NULL,
    created_by_name text NOT NULL,
    comment text NOT NULL,
    ends_at timestamptz NOT NULL,
    -- expired by opsbot when its group resolves
    until_resolved boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- set once Alertmanager confirmed the expiry (or no longer had the silence)
    expired_at timestamptz,
    expired_by_name text,
    -- the group resolved: opsbot must expire it; retried from here until Alertmanager answers
    expire_due_at timestamptz,
    expire_attempts integer NOT NULL DEFAULT 0,
    expire_error text
);
CREATE INDEX alert_silences_due ON alert_silences (expire_due_at) WHERE expired_at IS NULL AND expire_due_at IS NOT NULL;
CREATE INDEX alert_silences_group ON alert_silences (group_id) WHERE group_id IS NOT NULL;

-- Who silenced the group (for "silenced by @x until ..."); the name and end were already here.
ALTER TABLE alert_groups ADD COLUMN silenced_by_id bigint;

-- The deploy the group correlates with: a deploy of its service (the `[alerts]
-- service_label` label) that started within `[alerts] correlate_window` before the group's
-- first alert started. Its message names the deploy and offers a Rollback button.
ALTER TABLE alert_groups ADD COLUMN correlated_deploy_id bigint REFERENCES deploys (id);

-- A group with more alerts than its message can list gets a thread on the message with the
-- full list (started once the message is delivered); notable changes are posted there too.
ALTER TABLE alert_groups ADD COLUMN needs_thread boolean NOT NULL DEFAULT false;
ALTER TABLE alert_groups ADD COLUMN thread_id bigint;
