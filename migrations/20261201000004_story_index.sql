-- A story (a deploy's or an incident's events) is paged by id: keep that an index walk.
CREATE INDEX audit_events_story_idx ON audit_events (correlation_id, id) WHERE correlation_id IS NOT NULL;
DROP INDEX audit_events_correlation_idx;
