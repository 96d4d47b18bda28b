-- How many tasks each account has per level, type and status, kept by triggers in the same
-- statement as every insert, status change and delete of a task. DescribeTasks sums these
-- for its TotalCount when the filter only narrows by level, type and status (the task center's
-- broad views), instead of counting up to millions of rows on every call.
CREATE TABLE task_counts (
    account_id TEXT NOT NULL,
    level      INTEGER NOT NULL,
    task_type  TEXT NOT NULL,
    status     TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (account_id, level, task_type, status)
) WITHOUT ROWID;

INSERT INTO task_counts (account_id, level, task_type, status, n)
    SELECT account_id, level, task_type, status, COUNT(*) FROM tasks
    GROUP BY account_id, level, task_type, status;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (account_id, level, task_type, status, n)
        VALUES (NEW.account_id, NEW.level, NEW.task_type, NEW.status, 1)
        ON CONFLICT (account_id, level, task_type, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1
        WHERE account_id = OLD.account_id AND level = OLD.level
          AND task_type = OLD.task_type AND status = OLD.status;
END;

CREATE TRIGGER task_counts_update AFTER UPDATE OF account_id, level, task_type, status ON tasks
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.level IS NOT NEW.level
     OR OLD.task_type IS NOT NEW.task_type OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE task_counts SET n = n - 1
        WHERE account_id = OLD.account_id AND level = OLD.level
          AND task_type = OLD.task_type AND status = OLD.status;
    INSERT INTO task_counts (account_id, level, task_type, status, n)
        VALUES (NEW.account_id, NEW.level, NEW.task_type, NEW.status, 1)
        ON CONFLICT (account_id, level, task_type, status) DO UPDATE SET n = n + 1;
END;
