-- Named leases (issue 24, design §6.6): what one node at a time does for the whole farm, other
-- than watching a docker host (whose lease is on its `hosts` row): the discovery and watching of
-- an ADB group's devices (`adb:<group>`).
--   owner_node  the node holding it until until_ms (NULL: nobody)
--   epoch       bumped by every take, so a node can tell it lost the lease in between
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    owner_node  TEXT,
    until_ms    BIGINT NOT NULL DEFAULT 0,
    epoch       BIGINT NOT NULL DEFAULT 0
);
