-- ADB endpoints and key pairs (issue 22).
--
-- key_pairs: an account's ADB key pairs, public half only (the private key of CreateKeyPair is
-- in that call's answer and nowhere else). public_key is adbkey.pub's text. Names are unique
-- within an account.
CREATE TABLE key_pairs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE UNIQUE INDEX key_pairs_name ON key_pairs (account_id, name);
CREATE INDEX key_pairs_by_account ON key_pairs (account_id, created_ms, id);

-- instance_adb: one row per instance whose ADB settings were ever touched.
--   key_pair_id  the attached key pair (at most one), NULL when none
--   secure       SetAdbSecure's Status: 1 = clients must sign with the attached key, 0 = anyone
--   started      StartInstanceAdb opened the endpoint (StopInstanceAdb closes it)
--   port         the gateway port, unique in the whole database; kept while the endpoint is
--                stopped, freed once the instance is DELETED (the next allocation reclaims it)
--   started_ms   when the endpoint was last opened (ListInstanceAdbAttributes' GmtCreated)
CREATE TABLE instance_adb (
    instance_id TEXT COLLATE "C" PRIMARY KEY REFERENCES instances (id),
    account_id  TEXT NOT NULL,
    key_pair_id TEXT COLLATE "C" REFERENCES key_pairs (id),
    secure      BIGINT NOT NULL DEFAULT 0,
    started     BOOLEAN NOT NULL DEFAULT FALSE,
    port        BIGINT,
    started_ms  BIGINT,
    created_ms  BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX instance_adb_port ON instance_adb (port);
CREATE INDEX instance_adb_by_key ON instance_adb (key_pair_id) WHERE key_pair_id IS NOT NULL;
CREATE INDEX instance_adb_started ON instance_adb (account_id, started_ms, instance_id)
    WHERE started;

-- Where the round-robin allocation of gateway ports goes on from: ports are handed out after
-- the last one given, wrapping, so a freed port is the last to be handed out again (a client
-- still retrying the old phone's address should not land on a new tenant's phone at once).
-- Its one row is what allocations lock (FOR UPDATE), so nodes allocate one at a time; the
-- unique index on instance_adb.port backs this up.
CREATE TABLE adb_port_cursor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_port BIGINT NOT NULL
);
INSERT INTO adb_port_cursor (id, last_port) VALUES (1, 0);
