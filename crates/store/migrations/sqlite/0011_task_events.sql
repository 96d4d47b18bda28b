-- The task event log behind the watch stream (GET /tasks/watch): one row per transition of a
-- batch or instance task (created; status changed; a batch's counters changed), written by
-- triggers in the same statement as the change, so that every path that moves a task logs it
-- and nothing is logged that did not commit. Rows are numbered in commit order (one writer):
-- a reader resumes after the last id it saw, nothing missed, nothing twice.
CREATE TABLE task_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    parent_id   TEXT,
    invoke_id   TEXT NOT NULL,
    level       INTEGER NOT NULL,
    task_type   TEXT NOT NULL,
    status      TEXT NOT NULL,
    instance_id TEXT,
    error_code  TEXT,
    c_waiting   INTEGER,
    c_processing INTEGER,
    c_finished  INTEGER,
    c_failed    INTEGER,
    c_skipped   INTEGER,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX task_events_by_account ON task_events (account_id, id);
CREATE INDEX task_events_by_age ON task_events (at_ms);

CREATE TRIGGER task_events_insert AFTER INSERT ON tasks WHEN NEW.level IN (1, 2) BEGIN
    INSERT INTO task_events (account_id, task_id, parent_id, invoke_id, level, task_type,
        status, instance_id, error_code, c_waiting, c_processing, c_finished, c_failed,
        c_skipped, at_ms)
    VALUES (NEW.account_id, NEW.id, NEW.parent_id, NEW.invoke_id, NEW.level, NEW.task_type,
        NEW.status, NEW.instance_id, NEW.error_code, NEW.c_waiting, NEW.c_processing,
        NEW.c_finished, NEW.c_failed, NEW.c_skipped,
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER task_events_update
AFTER UPDATE OF status, c_waiting, c_processing, c_finished, c_failed, c_skipped ON tasks
WHEN NEW.level IN (1, 2) AND (OLD.status IS NOT NEW.status
    OR OLD.c_waiting IS NOT NEW.c_waiting OR OLD.c_processing IS NOT NEW.c_processing
    OR OLD.c_finished IS NOT NEW.c_finished OR OLD.c_failed IS NOT NEW.c_failed
    OR OLD.c_skipped IS NOT NEW.c_skipped)
BEGIN
    INSERT INTO task_events (account_id, task_id, parent_id, invoke_id, level, task_type,
        status, instance_id, error_code, c_waiting, c_processing, c_finished, c_failed,
        c_skipped, at_ms)
    VALUES (NEW.account_id, NEW.id, NEW.parent_id, NEW.invoke_id, NEW.level, NEW.task_type,
        NEW.status, NEW.instance_id, NEW.error_code, NEW.c_waiting, NEW.c_processing,
        NEW.c_finished, NEW.c_failed, NEW.c_skipped,
        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
