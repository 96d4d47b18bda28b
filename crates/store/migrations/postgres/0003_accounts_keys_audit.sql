-- Accounts and access keys can be disabled (a disabled key, or any key of a disabled account,
-- authenticates nothing), and carry their creation time; every mutating call is audited.
ALTER TABLE accounts ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE accounts ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE access_keys ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE access_keys ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX access_keys_by_account ON access_keys (account_id, key_id);

CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at_ms        BIGINT NOT NULL,
    account_id   TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    action       TEXT NOT NULL,
    -- The ids the call named or created, as a JSON array of strings.
    resource_ids TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    source       TEXT NOT NULL,
    -- "Success", or the error Code the call was answered with.
    outcome      TEXT NOT NULL
);
CREATE INDEX audit_by_account ON audit_log (account_id, id);
