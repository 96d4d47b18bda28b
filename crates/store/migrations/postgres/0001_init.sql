-- cloudphone schema, PostgreSQL flavour: the SQLite migrations 0001..0005 in one. Times are
-- milliseconds since the Unix epoch, given by the caller. Enumerations are stored as their wire
-- strings (TaskType, TaskStatus, InstanceStatus).
--
-- Ids that listings sort on and seek past (keyset pages) use the "C" collation: byte order, as
-- SQLite compares them, whatever the database's default locale.

CREATE TABLE accounts (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE access_keys (
    key_id     TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    account_id TEXT NOT NULL,
    user_name  TEXT NOT NULL
);

-- Signature nonces seen, per key, until they expire.
CREATE TABLE nonces (
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, nonce)
);

CREATE INDEX nonces_by_expiry ON nonces (expires_ms);

-- Shared secrets and other node-wide values.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Object-store buckets (design.md §7): a bucket belongs to the account that first wrote to it.
CREATE TABLE buckets (
    name       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL
);

-- `image_task_id` is the batch of the group's latest image update; its status gives the group's
-- UPDATING / UPDATING_FAILED status.
CREATE TABLE instance_groups (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT NOT NULL,
    name          TEXT NOT NULL,
    region_id     TEXT NOT NULL,
    image_id      TEXT NOT NULL,
    spec          TEXT NOT NULL,
    charge_type   TEXT NOT NULL,
    -- JSON array of [key, value] pairs.
    tags          TEXT NOT NULL DEFAULT '[]',
    created_ms    BIGINT NOT NULL,
    modified_ms   BIGINT NOT NULL,
    deleting      BOOLEAN NOT NULL DEFAULT FALSE,
    image_task_id TEXT
);

CREATE INDEX instance_groups_by_account ON instance_groups (account_id, created_ms, id);

CREATE TABLE instances (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT NOT NULL,
    group_id    TEXT NOT NULL REFERENCES instance_groups (id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    region_id   TEXT NOT NULL,
    up_bw       BIGINT,
    down_bw     BIGINT,
    created_ms  BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL
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
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT COLLATE "C" NOT NULL UNIQUE,
    account_id    TEXT NOT NULL,
    invoke_id     TEXT NOT NULL,
    parent_id     TEXT COLLATE "C",
    level         SMALLINT NOT NULL,
    task_type     TEXT NOT NULL,
    status        TEXT NOT NULL,
    resource_id   TEXT NOT NULL DEFAULT '',
    instance_id   TEXT COLLATE "C",
    instance_name TEXT,
    param         TEXT NOT NULL DEFAULT '',
    result        TEXT,
    error_code    TEXT,
    error_msg     TEXT,
    operator      TEXT NOT NULL DEFAULT '',
    start_ms      BIGINT NOT NULL,
    finish_ms     BIGINT,
    c_waiting     BIGINT,
    c_processing  BIGINT,
    c_finished    BIGINT,
    c_failed      BIGINT,
    c_skipped     BIGINT,
    attempt       BIGINT NOT NULL DEFAULT 0,
    run_state     TEXT NOT NULL CHECK (run_state IN ('queued', 'leased', 'done')),
    owner         TEXT,
    lease_ms      BIGINT,
    not_before_ms BIGINT NOT NULL DEFAULT 0,
    prev_status   TEXT
);

-- DescribeTasks, newest first, one index per query shape. A btree serves
-- `ORDER BY start_ms DESC, id DESC` by a backward scan and seeks the keyset cursor
-- `(start_ms, id) < ($1, $2)`.
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
CREATE INDEX tasks_unfinished ON tasks (instance_id, seq) WHERE run_state <> 'done';
CREATE INDEX tasks_leased ON tasks (lease_ms) WHERE run_state = 'leased';
CREATE INDEX tasks_finished ON tasks (finish_ms) WHERE finish_ms IS NOT NULL;
-- At most one running task per instance, whatever the nodes sharing the database do: the
-- claim's own discipline (the instance row locked before a lease) keeps to it, and this makes a
-- slip an error instead of two operations on one phone.
CREATE UNIQUE INDEX tasks_one_leased_per_instance ON tasks (instance_id)
    WHERE run_state = 'leased' AND instance_id IS NOT NULL;

-- Backup files (BackupFile): one row per instance and call. `status` is CREATING until its
-- BackupFile task (task_id) ends, then AVAILABLE or FAILED, set in the transaction that ends the
-- task; `size` is the archive's size once stored. Lists are JSON arrays of strings.
CREATE TABLE backups (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account_id      TEXT NOT NULL,
    instance_id     TEXT NOT NULL,
    instance_name   TEXT NOT NULL,
    group_id        TEXT NOT NULL,
    oss_path        TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    source_paths    TEXT NOT NULL DEFAULT '[]',
    exclude_paths   TEXT NOT NULL DEFAULT '[]',
    source_apps     TEXT NOT NULL DEFAULT '[]',
    backup_all      BOOLEAN NOT NULL DEFAULT FALSE,
    upload_endpoint TEXT NOT NULL DEFAULT '',
    system_version  TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    size            BIGINT NOT NULL DEFAULT 0,
    task_id         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    modified_ms     BIGINT NOT NULL
);

CREATE INDEX backups_by_account ON backups (account_id, created_ms, id);
CREATE INDEX backups_by_task ON backups (task_id);

-- Apps registered with CreateApp. `install_task_id` is the latest InstallApp or UninstallApp batch
-- over the app (`install_kind` says which); its status gives the app's InstallationStatus.
CREATE TABLE apps (
    id              BIGSERIAL PRIMARY KEY,
    account_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    package         TEXT NOT NULL,
    version_name    TEXT NOT NULL DEFAULT '',
    version_code    TEXT NOT NULL DEFAULT '',
    md5             TEXT NOT NULL DEFAULT '',
    size            BIGINT NOT NULL DEFAULT 0,
    source          TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    icon_url        TEXT NOT NULL DEFAULT '',
    install_param   TEXT NOT NULL DEFAULT '',
    install_task_id TEXT,
    install_kind    TEXT,
    created_ms      BIGINT NOT NULL,
    modified_ms     BIGINT NOT NULL
);

CREATE INDEX apps_by_account ON apps (account_id, id DESC);
