-- An alert group declared as an incident from its message (the Declare incident button):
-- the message then names the incident, and the incident's timeline names the group.
ALTER TABLE alert_groups ADD COLUMN incident_id bigint REFERENCES incidents (id);
CREATE INDEX alert_groups_incident_idx ON alert_groups (incident_id) WHERE incident_id IS NOT NULL;
