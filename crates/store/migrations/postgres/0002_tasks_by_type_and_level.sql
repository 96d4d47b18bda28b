-- DescribeTasks with TaskType and Level (the task center's "batches of one type").
CREATE INDEX tasks_by_account_level_type ON tasks (account_id, level, task_type, start_ms, id);
