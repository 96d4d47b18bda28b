-- Simulated phones shared by nodes without a shared file system (issue 24, design §9).
--   generation     bumped by each publish of the phone's files
--   manifest       object key of that generation's manifest ('' before the first publish)
--   holder         the node holding the phone's checkout until held_until_ms
--   props/state/live  the phone's small JSON documents ('' = none yet)
CREATE TABLE sim_phones (
    instance_id   TEXT COLLATE "C" PRIMARY KEY,
    generation    BIGINT NOT NULL DEFAULT 0,
    manifest      TEXT NOT NULL DEFAULT '',
    holder        TEXT,
    held_until_ms BIGINT NOT NULL DEFAULT 0,
    props         TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT '',
    live          TEXT NOT NULL DEFAULT '',
    live_version  BIGINT NOT NULL DEFAULT 0
);
