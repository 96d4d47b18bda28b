-- Object-store buckets (design.md §7): a bucket belongs to the account that first wrote to it.
CREATE TABLE buckets (
    name       TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL
);
