-- Every `opsbot run` renews its row here (the replica heartbeat); `opsbot status` lists the
-- replicas seen recently and, through `leases.holder = replicas.id`, which holds what.
CREATE TABLE replicas (
    id         uuid PRIMARY KEY,
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    version    text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replicas_seen_at ON replicas (seen_at);
