-- Events out (issue 16): per sink (`nats`, `pubsub`), the last chain position published and
-- acknowledged by the broker. Publishing resumes after it, so nothing is skipped after a
-- restart or an outage; it only moves forward, after the broker's acknowledgement.
CREATE TABLE events_cursor (
    sink         text        PRIMARY KEY,
    position     bigint      NOT NULL CHECK (position >= 0),
    published_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
