-- The task event log behind the watch stream (GET /tasks/watch): one row per transition of a
-- batch or instance task (created; status changed; a batch's counters changed), written by a
-- trigger in the same transaction as the change.
--
-- Several nodes commit in any order, so ids alone do not tell a reader what it may have
-- missed: a row with a lower id may commit after one with a higher id. Each row records its
-- transaction id; a reader only takes rows of transactions older than every transaction still
-- running (pg_snapshot_xmin), in (txid, id) order. Every row it has not taken yet then has a
-- txid at least that horizon, so resuming after the last (txid, id) it saw misses nothing and
-- repeats nothing.
CREATE TABLE task_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    account_id   TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    parent_id    TEXT,
    invoke_id    TEXT NOT NULL,
    level        SMALLINT NOT NULL,
    task_type    TEXT NOT NULL,
    status       TEXT NOT NULL,
    instance_id  TEXT,
    error_code   TEXT,
    c_waiting    BIGINT,
    c_processing BIGINT,
    c_finished   BIGINT,
    c_failed     BIGINT,
    c_skipped    BIGINT,
    at_ms        BIGINT NOT NULL
);
CREATE INDEX task_events_by_account ON task_events (account_id, txid, id);
CREATE INDEX task_events_by_age ON task_events (at_ms);

-- A batch's children are inserted by few statements of many rows: a statement-level trigger
-- over the transition table logs them with one INSERT ... SELECT each.
CREATE FUNCTION log_inserted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (account_id, task_id, parent_id, invoke_id, level, task_type, status,
        instance_id, error_code, c_waiting, c_processing, c_finished, c_failed, c_skipped, at_ms)
    SELECT n.account_id, n.id, n.parent_id, n.invoke_id, n.level, n.task_type, n.status,
        n.instance_id, n.error_code, n.c_waiting, n.c_processing, n.c_finished, n.c_failed,
        n.c_skipped, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
    FROM inserted n WHERE n.level IN (1, 2) ORDER BY n.seq;
    RETURN NULL;
END
$$;

CREATE FUNCTION log_updated_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_events (account_id, task_id, parent_id, invoke_id, level, task_type, status,
        instance_id, error_code, c_waiting, c_processing, c_finished, c_failed, c_skipped, at_ms)
    VALUES (NEW.account_id, NEW.id, NEW.parent_id, NEW.invoke_id, NEW.level, NEW.task_type,
        NEW.status, NEW.instance_id, NEW.error_code, NEW.c_waiting, NEW.c_processing,
        NEW.c_finished, NEW.c_failed, NEW.c_skipped,
        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    RETURN NULL;
END
$$;

CREATE TRIGGER task_events_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION log_inserted_tasks();

-- Updates touch one row per statement or a few: a row trigger whose condition is checked
-- before any function is called (a heartbeat's update calls none).
CREATE TRIGGER task_events_update
    AFTER UPDATE OF status, c_waiting, c_processing, c_finished, c_failed, c_skipped ON tasks
    FOR EACH ROW
    WHEN (NEW.level IN (1, 2) AND (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.c_waiting IS DISTINCT FROM NEW.c_waiting
        OR OLD.c_processing IS DISTINCT FROM NEW.c_processing
        OR OLD.c_finished IS DISTINCT FROM NEW.c_finished
        OR OLD.c_failed IS DISTINCT FROM NEW.c_failed
        OR OLD.c_skipped IS DISTINCT FROM NEW.c_skipped))
    EXECUTE FUNCTION log_updated_task();
