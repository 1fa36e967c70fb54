-- The dashboard's overview (DORA keys) reads ranges of deploys, incidents and denials; these
-- keep each an index range scan at 100 k deploys and 10 M audit events.
CREATE INDEX deploys_finished_idx ON deploys (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX deploys_requested_idx ON deploys (requested_at);
-- "Followed by a rollback": the rollbacks of a window (few), each looking back over
-- deploys_finished_idx for what it followed.
CREATE INDEX deploys_rollbacks_idx ON deploys (requested_at) WHERE is_rollback;
CREATE INDEX incidents_started_idx ON incidents (started_at);
CREATE INDEX incidents_resolved_idx ON incidents (resolved_at) WHERE resolved_at IS NOT NULL;
-- Denials per day without reading every event of the window: denials are few, and this
-- index alone answers the count (an index-only scan).
CREATE INDEX audit_events_denied_idx ON audit_events (at) WHERE outcome IN ('denied', 'refused');
