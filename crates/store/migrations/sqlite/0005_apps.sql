-- Apps registered with CreateApp. `install_task_id` is the latest InstallApp or UninstallApp batch
-- over the app (`install_kind` says which); its status gives the app's InstallationStatus.
CREATE TABLE apps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    package TEXT NOT NULL,
    version_name TEXT NOT NULL DEFAULT '',
    version_code TEXT NOT NULL DEFAULT '',
    md5 TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    icon_url TEXT NOT NULL DEFAULT '',
    install_param TEXT NOT NULL DEFAULT '',
    install_task_id TEXT,
    install_kind TEXT,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL
);
CREATE INDEX apps_by_account ON apps (account_id, id DESC);
