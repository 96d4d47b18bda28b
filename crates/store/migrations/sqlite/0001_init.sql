-- cloudphone schema, SQLite flavour. Times are milliseconds since the Unix epoch, given by the
-- caller. Enumerations are stored as their wire strings (TaskType, TaskStatus, InstanceStatus).

CREATE TABLE accounts (
    id   TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL
);

CREATE TABLE access_keys (
    key_id     TEXT PRIMARY KEY NOT NULL,
    secret     TEXT NOT NULL,
    account_id TEXT NOT NULL,
    user_name  TEXT NOT NULL
);

-- Signature nonces seen, per key, until they expire.
CREATE TABLE nonces (
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;

CREATE INDEX nonces_by_expiry ON nonces (expires_ms);

-- Shared secrets and other node-wide values.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE instance_groups (
    id          TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    region_id   TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    charge_type TEXT NOT NULL,
    -- JSON array of [key, value] pairs.
    tags        TEXT NOT NULL DEFAULT '[]',
    created_ms  INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    deleting    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX instance_groups_by_account ON instance_groups (account_id, created_ms, id);

CREATE TABLE instances (
    id          TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL,
    group_id    TEXT NOT NULL REFERENCES instance_groups (id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    region_id   TEXT NOT NULL,
    up_bw       INTEGER,
    down_bw     INTEGER,
    created_ms  INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL
);

CREATE INDEX instances_by_account ON instances (account_id, created_ms, id);
CREATE INDEX instances_by_group ON instances (group_id, status);

-- Every task: batches (level 1), instance tasks (level 2) and internal work (level 0).
--   seq        acceptance order (claims follow it)
--   run_state  the engine's view: 'queued' (claimable once not_before_ms passed), 'leased'
--              (an attempt runs, owned by `owner` until `lease_ms`), 'done' (terminal, or a
--              batch, which is never claimed)
--   prev_status the instance status before the first attempt started (for after-failure)
--   c_*        children counters, batches only
CREATE TABLE tasks (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    account_id    TEXT NOT NULL,
    invoke_id     TEXT NOT NULL,
    parent_id     TEXT,
    level         INTEGER NOT NULL,
    task_type     TEXT NOT NULL,
    status        TEXT NOT NULL,
    resource_id   TEXT NOT NULL DEFAULT '',
    instance_id   TEXT,
    instance_name TEXT,
    param         TEXT NOT NULL DEFAULT '',
    result        TEXT,
    error_code    TEXT,
    error_msg     TEXT,
    operator      TEXT NOT NULL DEFAULT '',
    start_ms      INTEGER NOT NULL,
    finish_ms     INTEGER,
    c_waiting     INTEGER,
    c_processing  INTEGER,
    c_finished    INTEGER,
    c_failed      INTEGER,
    c_skipped     INTEGER,
    attempt       INTEGER NOT NULL DEFAULT 0,
    run_state     TEXT NOT NULL CHECK (run_state IN ('queued', 'leased', 'done')),
    owner         TEXT,
    lease_ms      INTEGER,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    prev_status   TEXT
);

-- DescribeTasks, newest first, one index per query shape. SQLite scans them backwards for
-- `ORDER BY start_ms DESC, id DESC` and seeks the keyset cursor `(start_ms, id) < (?, ?)`.
CREATE INDEX tasks_by_account ON tasks (account_id, start_ms, id);
CREATE INDEX tasks_by_account_level ON tasks (account_id, level, start_ms, id);
CREATE INDEX tasks_by_account_status ON tasks (account_id, status, start_ms, id);
CREATE INDEX tasks_by_account_type ON tasks (account_id, task_type, start_ms, id);
CREATE INDEX tasks_by_invoke ON tasks (invoke_id, start_ms, id);
CREATE INDEX tasks_by_parent ON tasks (parent_id, start_ms, id);
CREATE INDEX tasks_by_resource ON tasks (resource_id, start_ms, id);
CREATE INDEX tasks_by_instance ON tasks (instance_id, start_ms, id);

-- The engine: claimable tasks in acceptance order; the unfinished task of each instance (the
-- one-at-a-time, in-order rule); leases for the sweeper; finished tasks for the purge.
CREATE INDEX tasks_queued ON tasks (seq, not_before_ms) WHERE run_state = 'queued';
CREATE INDEX tasks_unfinished ON tasks (instance_id, seq) WHERE run_state != 'done';
CREATE INDEX tasks_leased ON tasks (lease_ms) WHERE run_state = 'leased';
CREATE INDEX tasks_finished ON tasks (finish_ms) WHERE finish_ms IS NOT NULL;
