-- Remote events a module handed over durably (a Slack event acknowledged to
-- Slack, which will not send it again) that have not reached Matrix yet. The
-- event, content included, stays here only until it is in Matrix: the row is
-- deleted then. Replayed at start, in order, after a crash.
CREATE TABLE remote_spool (
    seq        BIGSERIAL PRIMARY KEY,
    network    TEXT   NOT NULL,
    spool_key  TEXT   NOT NULL,
    event      TEXT   NOT NULL,
    queued_ts  BIGINT NOT NULL,
    UNIQUE (network, spool_key)
);
