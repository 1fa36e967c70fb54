-- An edit may target the message an earlier outbox row posts, before anyone knows its
-- Discord id: it waits until that row is delivered, then edits the message it created.
ALTER TABLE outbox ADD COLUMN edit_outbox_id bigint REFERENCES outbox (id);
ALTER TABLE outbox ADD CONSTRAINT outbox_one_edit_target
    CHECK (edit_message_id IS NULL OR edit_outbox_id IS NULL);
CREATE INDEX outbox_edit_reference_idx ON outbox (edit_outbox_id) WHERE edit_outbox_id IS NOT NULL;
