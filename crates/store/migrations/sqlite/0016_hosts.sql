-- Hosts of the farm (issue 24): docker engines of the backends files, and the pseudo-host 'sim'.
-- The file is the truth for address and capacity; the rest is runtime state written by nodes.
--   max_phones, cpu_milli, memory_mib  the host's limits (NULL: not limited by that)
--   images          JSON array of the image ids it runs; [] = every image of its kind
--   port_low/high   host network: the range of ADB ports handed to its phones (host_ports)
--   seen_ms         last refresh by a node that has it in its file (30 s silent: missing)
--   health_ms       when health was last confirmed (placement trusts it for 10 s)
--   owner_node      the node watching it (events, reconcile) until lease_until_ms
--   lease_epoch     bumped by each take: fences the health writes of an owner that lost it
CREATE TABLE hosts (
    name           TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('docker', 'sim')),
    address        TEXT NOT NULL DEFAULT '',
    max_phones     INTEGER,
    cpu_milli      INTEGER,
    memory_mib     INTEGER,
    images         TEXT NOT NULL DEFAULT '[]',
    port_low       INTEGER,
    port_high      INTEGER,
    config_digest  TEXT NOT NULL DEFAULT '',
    seen_ms        INTEGER NOT NULL DEFAULT 0,
    cordoned       INTEGER NOT NULL DEFAULT 0,
    drain_id       TEXT,
    health         TEXT NOT NULL DEFAULT 'unknown'
                   CHECK (health IN ('unknown', 'healthy', 'unhealthy', 'missing')),
    health_reason  TEXT NOT NULL DEFAULT '',
    health_ms      INTEGER NOT NULL DEFAULT 0,
    engine_version TEXT NOT NULL DEFAULT '',
    api_version    TEXT NOT NULL DEFAULT '',
    owner_node     TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    lease_epoch    INTEGER NOT NULL DEFAULT 0
);

-- Where each phone lives (NULL: adb devices, and older phones until a node adopts them);
-- moving_to: the target of a MigrateInstance in progress (room held on both hosts meanwhile).
ALTER TABLE instances ADD COLUMN host TEXT;
ALTER TABLE instances ADD COLUMN moving_to TEXT;
CREATE INDEX instances_by_host ON instances (host, status) WHERE host IS NOT NULL;
CREATE INDEX instances_moving ON instances (moving_to) WHERE moving_to IS NOT NULL;

-- ADB ports of host-network phones, one row per port held (a moving phone holds two).
CREATE TABLE host_ports (
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    instance_id TEXT NOT NULL,
    PRIMARY KEY (host, port)
);
CREATE INDEX host_ports_by_instance ON host_ports (instance_id);

-- A deleted phone gives its ports back in the transaction that deletes it, whoever deletes it.
CREATE TRIGGER host_ports_of_deleted AFTER UPDATE OF status ON instances
    FOR EACH ROW WHEN NEW.status = 'DELETED' AND OLD.status IS NOT 'DELETED'
BEGIN
    DELETE FROM host_ports WHERE instance_id = NEW.id;
END;

-- Nodes alive: the share of host leases each should hold, and who watches what.
--   hosts  JSON: host name -> config digest, as in that node's file
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY NOT NULL,
    started_ms   INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    version      TEXT NOT NULL,
    hosts        TEXT NOT NULL DEFAULT '{}'
);

-- Drains: one row per `admin hosts drain`; its MigrateInstance tasks carry invoke_id = id.
CREATE TABLE host_drains (
    id          TEXT PRIMARY KEY NOT NULL,
    host        TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('copy', 'recreate')),
    phones      INTEGER NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER
);
