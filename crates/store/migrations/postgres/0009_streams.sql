-- Live screen sessions and the epochs connection tickets are checked against (issue 23).
--
-- stream_sessions: one row per viewer's WebSocket, from when it opened; kept 7 days after it
-- ended (the phone page's history), then reaped.
--   key_id, task_id  the access key and TaskId of the ticket it opened with
--   node_id, peer    the node holding the socket, and the viewer's address
--   role             'control' (its input reaches the phone; at most one live per phone) or 'view'
--   heartbeat_ms     written every second by the node holding it: a row silent for 10 s is
--                    stale (its node died) and is ended as 'Lost' by the next open on the
--                    phone, or by the reaper
--   ended_ms         NULL while it is live
--   end_reason       Closed, Disconnected, PhoneStopped, Lost, ...
CREATE TABLE stream_sessions (
    id           TEXT COLLATE "C" PRIMARY KEY,
    account_id   TEXT NOT NULL,
    instance_id  TEXT COLLATE "C" NOT NULL REFERENCES instances (id),
    end_user_id  TEXT NOT NULL DEFAULT '',
    key_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    peer         TEXT NOT NULL,
    role         TEXT NOT NULL,
    opened_ms    BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    ended_ms     BIGINT,
    end_reason   TEXT
);
CREATE INDEX stream_sessions_live ON stream_sessions (instance_id) WHERE ended_ms IS NULL;
CREATE UNIQUE INDEX stream_sessions_controller ON stream_sessions (instance_id)
    WHERE ended_ms IS NULL AND role = 'control';
CREATE INDEX stream_sessions_history ON stream_sessions (account_id, instance_id, opened_ms);
CREATE INDEX stream_sessions_ended ON stream_sessions (ended_ms) WHERE ended_ms IS NOT NULL;

-- Epochs: a ticket names the epochs it was issued under, and opens a session only while they
-- are current; DisconnectAndroidInstance moves them on. A missing row is epoch 0.
--   end_user_id  '*' = the phone's own epoch (every user); else that EndUserId's on the phone
CREATE TABLE stream_epochs (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id),
    end_user_id TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    PRIMARY KEY (instance_id, end_user_id)
);
