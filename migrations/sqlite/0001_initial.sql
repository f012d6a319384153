-- Passerelle schema, SQLite flavour. migrations/postgres/0001_initial.sql has
-- the same tables and columns; only the types differ. Timestamps are
-- milliseconds since the epoch, flags are 0/1, JSON is TEXT.
-- No table holds a message body, by design (privacy).

CREATE TABLE portal (
    network            TEXT    NOT NULL,
    portal_id          TEXT    NOT NULL,
    room_id            TEXT    UNIQUE,
    kind               TEXT    NOT NULL CHECK (kind IN ('group', 'dm', 'broadcast')),
    name               TEXT,
    relay              INTEGER NOT NULL DEFAULT 1 CHECK (relay IN (0, 1)),
    disappear_after_ms INTEGER,
    metadata           TEXT    NOT NULL DEFAULT '{}',
    created_ts         INTEGER NOT NULL,
    PRIMARY KEY (network, portal_id)
);

CREATE TABLE ghost (
    network      TEXT    NOT NULL,
    remote_id    TEXT    NOT NULL,
    mxid         TEXT    NOT NULL UNIQUE,
    display_name TEXT,
    avatar_ref   TEXT,
    avatar_mxc   TEXT,
    registered   INTEGER NOT NULL DEFAULT 0 CHECK (registered IN (0, 1)),
    metadata     TEXT    NOT NULL DEFAULT '{}',
    updated_ts   INTEGER NOT NULL,
    PRIMARY KEY (network, remote_id)
);

CREATE TABLE matrix_user (
    mxid            TEXT    NOT NULL PRIMARY KEY,
    management_room TEXT,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    created_ts      INTEGER NOT NULL
);
CREATE INDEX matrix_user_management_room_idx ON matrix_user (management_room);

-- Tokens and passwords live in `secret`, never in `metadata`.
CREATE TABLE login (
    network        TEXT    NOT NULL,
    mxid           TEXT    NOT NULL,
    login_id       TEXT    NOT NULL,
    remote_user_id TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    secret         TEXT,
    metadata       TEXT    NOT NULL DEFAULT '{}',
    updated_ts     INTEGER NOT NULL,
    PRIMARY KEY (network, mxid, login_id)
);
CREATE INDEX login_mxid_idx ON login (mxid);

-- Message map: ids and times only, never content.
CREATE TABLE message (
    network           TEXT    NOT NULL,
    portal_id         TEXT    NOT NULL,
    remote_id         TEXT    NOT NULL,
    part              INTEGER NOT NULL,
    room_id           TEXT    NOT NULL,
    event_id          TEXT    NOT NULL UNIQUE,
    sender_mxid       TEXT    NOT NULL,
    ts                INTEGER NOT NULL,
    reply_to_event    TEXT,
    thread_root_event TEXT,
    PRIMARY KEY (network, portal_id, remote_id, part)
);
CREATE INDEX message_ts_idx ON message (ts);
CREATE INDEX message_portal_ts_idx ON message (network, portal_id, ts);

CREATE TABLE reaction (
    network          TEXT    NOT NULL,
    portal_id        TEXT    NOT NULL,
    target_remote_id TEXT    NOT NULL,
    sender           TEXT    NOT NULL,
    reaction_key     TEXT    NOT NULL,
    event_id         TEXT    NOT NULL UNIQUE,
    remote_id        TEXT,
    ts               INTEGER NOT NULL,
    PRIMARY KEY (network, portal_id, target_remote_id, sender, reaction_key)
);
CREATE INDEX reaction_ts_idx ON reaction (ts);

CREATE TABLE handled_txn (
    txn_id TEXT    NOT NULL PRIMARY KEY,
    ts     INTEGER NOT NULL
);
CREATE INDEX handled_txn_ts_idx ON handled_txn (ts);

CREATE TABLE handled_event (
    event_id TEXT    NOT NULL PRIMARY KEY,
    ts       INTEGER NOT NULL
);
CREATE INDEX handled_event_ts_idx ON handled_event (ts);

CREATE TABLE module_state (
    network   TEXT NOT NULL,
    state_key TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (network, state_key)
);
