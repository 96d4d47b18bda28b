-- Backup files (BackupFile): one row per instance and call. `status` is CREATING until its
-- BackupFile task (task_id) ends, then AVAILABLE or FAILED, set in the transaction that ends the
-- task; `size` is the archive's size once stored. Lists are JSON arrays of strings.
CREATE TABLE backups (
    id              TEXT PRIMARY KEY NOT NULL,
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
    backup_all      INTEGER NOT NULL DEFAULT 0,
    upload_endpoint TEXT NOT NULL DEFAULT '',
    system_version  TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    size            INTEGER NOT NULL DEFAULT 0,
    task_id         TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    modified_ms     INTEGER NOT NULL
);

CREATE INDEX backups_by_account ON backups (account_id, created_ms, id);
CREATE INDEX backups_by_task ON backups (task_id);
