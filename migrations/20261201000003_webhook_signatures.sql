-- Signed webhook reports accepted so far: each signature is accepted once, so a captured
-- report cannot be replayed (not even onto the deploy it was signed for). Rows older than
-- twice the signature's freshness window can no longer be replayed and are pruned.
CREATE TABLE webhook_signatures (
    digest      bytea PRIMARY KEY,
    deploy_id   bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_signatures_received_at ON webhook_signatures (received_at);
