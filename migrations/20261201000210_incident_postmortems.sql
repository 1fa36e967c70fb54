-- The GitHub issue an incident's postmortem was opened as (`/incident postmortem` with
-- [incidents.github]): a second run updates it instead of opening another.
CREATE TABLE incident_postmortems (
    incident_id  bigint PRIMARY KEY REFERENCES incidents (id),
    issue_number bigint      NOT NULL,
    issue_url    text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
