-- Issue 10's controls. A batch row may carry rate limits, as counts resolved when it was
-- created (NULL: none); a task may have been asked to stop while it runs (the worker learns it
-- from its next heartbeat).
ALTER TABLE tasks ADD COLUMN max_concurrency INTEGER;
ALTER TABLE tasks ADD COLUMN max_errors INTEGER;
ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;

-- ClientToken idempotency: a token is reserved ('pending') before its call runs and holds the
-- call's answer once it succeeded ('done'); a call that failed frees its token again.
CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    token       TEXT NOT NULL,
    -- A hash of the action and its parameters (ClientToken and signature fields aside).
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    -- The success body, RequestId included, once 'done'.
    body        TEXT,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (account_id, token)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_ms);
