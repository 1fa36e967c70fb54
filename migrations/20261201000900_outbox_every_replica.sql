-- Every replica drains the outbox: which dispatcher claimed a row last (operators, tests),
-- and a channel's pending rows found quickly (a channel is drained by one dispatcher at a
-- time, so its messages keep their order).
ALTER TABLE outbox ADD COLUMN claimed_by uuid;
CREATE INDEX outbox_pending_channel_idx ON outbox (channel_id) WHERE status = 'pending';
