-- Webhooks: an account's URLs (with the secret that signs what is sent to them), and one
-- delivery per URL for every batch that reaches a terminal status. The deliveries are queued by
-- a trigger in the same transaction as the batch's last transition, so none is lost; a sender
-- leases them (lease_ms), posts, and records the outcome or the time of the next attempt.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks (account_id, id);

CREATE TABLE webhook_deliveries (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    body          TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    not_before_ms BIGINT NOT NULL,
    lease_ms      BIGINT,
    last_status   BIGINT,
    last_error    TEXT,
    created_ms    BIGINT NOT NULL,
    done_ms       BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (not_before_ms) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_account ON webhook_deliveries (account_id, seq);

CREATE FUNCTION queue_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_ms BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, account_id, task_id, body, state,
            not_before_ms, created_ms)
        SELECT w.id, w.account_id, NEW.id,
            json_build_object('Event', 'BatchEnded', 'TaskId', NEW.id, 'InvokeId', NEW.invoke_id,
                'TaskType', NEW.task_type, 'TaskStatus', NEW.status,
                'TotalChildCount', NEW.c_waiting + NEW.c_processing + NEW.c_finished
                    + NEW.c_failed + NEW.c_skipped,
                'SuccessChildCount', NEW.c_finished, 'FailedChildCount', NEW.c_failed,
                'SkippedChildCount', NEW.c_skipped, 'FinishTimeMs', NEW.finish_ms)::TEXT,
            'pending', now_ms, now_ms
        FROM webhooks w WHERE w.account_id = NEW.account_id;
    RETURN NULL;
END
$$;

-- The condition is checked before the function is called: a child's transition costs no call.
CREATE TRIGGER webhook_deliveries_on_batch_end AFTER UPDATE OF status ON tasks
    FOR EACH ROW
    WHEN (NEW.level = 1 AND NEW.status IN ('Finished', 'PartFinished', 'Failed', 'Skipped')
        AND OLD.status IN ('Waiting', 'Processing'))
    EXECUTE FUNCTION queue_webhook_deliveries();
