-- Signature nonces move to a file of their own, attached by the writer (see the store's db
-- module): every call records one, and in WAL mode any commit to this file makes every reader
-- drop its page cache. The rows are copied over when the writer attaches the new file.
ALTER TABLE nonces RENAME TO nonces_moved;
DROP INDEX nonces_by_expiry;
