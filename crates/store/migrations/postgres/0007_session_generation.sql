-- Console sessions are revocable: a session cookie carries its key's session generation and is
-- refused once the key's generation moved on (a console logout, the key or its account
-- disabled). A new key starts at a random generation, so that a key deleted and made again
-- under the same id does not take back the cookies of the old one.
ALTER TABLE access_keys ADD COLUMN session_generation BIGINT NOT NULL DEFAULT 0;
