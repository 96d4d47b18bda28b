-- DescribeTasks with TaskType and Level (the task center's "batches of one type"): without this
-- index SQLite walks (account_id, level) and tests the type row by row.
CREATE INDEX tasks_by_account_level_type ON tasks (account_id, level, task_type, start_ms, id);
