-- A file an outbox row attaches (the chart added to an alert's message by an edit). Kept
-- beside the row, so claiming rows stays light; at most Discord's 10 MiB per file.
CREATE TABLE outbox_attachments (
    outbox_id bigint PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    filename text NOT NULL CHECK (filename ~ '^[A-Za-z0-9._-]{1,100}$'),
    bytes bytea NOT NULL CHECK (octet_length(bytes) BETWEEN 1 AND 10485760)
);
