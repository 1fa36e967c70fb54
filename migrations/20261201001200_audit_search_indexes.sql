-- The audit log at size (issue 14): each filter of the dashboard and of /api/audit is an
-- index walk in id order (newest first), and the text search a trigram index lookup, at
-- 10 M events. Costs on the write path and sizes at 10 M: BENCHMARKS.md, "audit-size".

-- pg_trgm is in PostgreSQL's contrib (Debian's postgresql package ships it) and is a
-- trusted extension: a role with CREATE on the database may create it, no superuser needed.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- outcome=denied, source=shell, actor=Ana (names are matched case-insensitively): newest
-- first straight off the index, however rare or common the value.
CREATE INDEX audit_events_outcome_idx ON audit_events (outcome, id);
CREATE INDEX audit_events_source_idx ON audit_events (source, id);
CREATE INDEX audit_events_actor_name_idx ON audit_events (lower(actor_name), id);

-- command=deploy matches `deploy` and `deploy …`: the query also compares the first word of
-- the command to the filter's first word (implied by the match, so it changes nothing),
-- which this index serves.
CREATE INDEX audit_events_group_idx ON audit_events (split_part(command, ' ', 1), id);

-- q=word: the query also matches this concatenation (implied by a match in any of the three
-- fields), which the trigram index serves. A trigram index needs 3 letters or digits in a
-- row to look anything up: shorter searches are refused with a message saying so.
CREATE INDEX audit_events_text_trgm_idx ON audit_events
    USING gin ((command || ' ' || detail || ' ' || args::text) gin_trgm_ops);

-- since=…&until=…: newest first inside a window far back in the log. The query also bounds
-- the id by the newest event of the window (implied: every event of the window has an id at
-- most that), which an index-only scan of the window on this index finds; the id walk then
-- starts at the window instead of reading every newer event (`max(id + 0)`, not `max(id)`:
-- the latter the planner turns into that same walk down the id). It replaces the `at` index.
CREATE INDEX audit_events_at_id_idx ON audit_events (at, id);
DROP INDEX audit_events_at_idx;
