-- Matrix events acknowledged to the homeserver but not yet delivered to their
-- module. Only ids are kept (no content): at start the bridge fetches each
-- event again from the homeserver and delivers it.
CREATE TABLE pending_event (
    event_id    TEXT   NOT NULL PRIMARY KEY,
    room_id     TEXT   NOT NULL,
    received_ts BIGINT NOT NULL
);
CREATE INDEX pending_event_received_idx ON pending_event (received_ts);
