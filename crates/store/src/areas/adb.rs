//! ADB endpoints and key pairs (issue 22): an account's key pairs (public halves only), the key
//! pair attached to each instance (at most one), whether its ADB endpoint is open, whether
//! clients must authenticate, and its gateway port, unique in the whole database. The gateway
//! asks [`AdbStore::adb_endpoint`] about the phone behind a port on every connection.
//!
//! Concurrency (PostgreSQL, several nodes): port allocations take the one row of
//! `adb_port_cursor` `FOR UPDATE`, so they run one at a time and each sees every port the one
//! before it gave (the unique index on `instance_adb.port` backs this up); an attachment and a
//! deletion of the same key pair lock its row, so a key pair is never attached after it is
//! gone; creations and renames of an account's key pairs take its `KeyPairs` lock, so two
//! cannot take one name. On SQLite one writer runs every write alone.

use std::collections::{HashMap, HashSet};

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, Instance, KeyPair};

use super::fleet;
use crate::sql::conn::{Conn, Lock, Row, parse};
use crate::sql::{Sql, page_of, v};
use crate::{
    AdbFilter, Cursor, KeyPairFilter, Listing, NewTask, Page, PlacementAsk, Result, StoreError,
};

area! {
    /// ADB endpoints and key pairs.
    pub trait AdbStore {
        /// Stores a key pair unless its account has one of that name or already `max` key
        /// pairs (then nothing is stored, and the answer says which).
        fn create_key_pair(&self, key: &KeyPair, max: u64) -> KeyPairCreated =
            write (|c| create_key_pair(c, key, max));
        /// Key pairs of an account, newest first; keyset-paginated.
        fn list_key_pairs(&self, filter: &KeyPairFilter, page: &Page) -> Listing<KeyPair> =
            snapshot (|c| list_key_pairs(c, filter, page));
        /// Renames a key pair of the account.
        fn rename_key_pair(&self, account_id: &str, key_pair_id: &str, name: &str) -> Rename =
            write (|c| rename_key_pair(c, account_id, key_pair_id, name));
        /// Deletes key pairs of the account, all or none: when one of `ids` is not the
        /// account's, nothing changes. A deleted key pair is first detached from every
        /// instance (which keeps its `secure`: a phone whose key went stays closed to
        /// unsigned clients).
        fn delete_key_pairs(&self, account_id: &str, ids: &[String]) -> KeyPairsDeleted =
            write (|c| delete_key_pairs(c, account_id, ids));
        /// Attaches a key pair of the account to instances of the account (not DELETED), in
        /// place of any other, and turns their authentication on (`secure` 1: a key attached
        /// is a key required). `None` when the key pair is not the account's (nothing
        /// changed); else the instances whose key or `secure` changed.
        fn attach_key_pair(
            &self,
            account_id: &str,
            key_pair_id: &str,
            instance_ids: &[String],
            now_ms: i64,
        ) -> Option<Vec<String>> =
            write (|c| attach_key_pair(c, account_id, key_pair_id, instance_ids, now_ms));
        /// Detaches a key pair of the account from those of `instance_ids` that have it
        /// (`secure` is left as it is). `None` when the key pair is not the account's; else
        /// the instances it was detached from.
        fn detach_key_pair(
            &self,
            account_id: &str,
            key_pair_id: &str,
            instance_ids: &[String],
            now_ms: i64,
        ) -> Option<Vec<String>> =
            write (|c| detach_key_pair(c, account_id, key_pair_id, instance_ids, now_ms));
        /// Sets whether clients of instances of the account must authenticate; returns the
        /// instances whose setting changed.
        fn set_adb_secure(
            &self,
            account_id: &str,
            instance_ids: &[String],
            secure: bool,
            now_ms: i64,
        ) -> Vec<String> = write (|c| set_adb_secure(c, account_id, instance_ids, secure, now_ms));
        /// Opens the ADB endpoints of instances of the account (not DELETED), giving each that
        /// has none (or one outside `ports`) a free port of `ports`, all or none.
        fn start_adb(
            &self,
            account_id: &str,
            instance_ids: &[String],
            ports: AdbPorts,
            now_ms: i64,
        ) -> StartAdb = write (|c| start_adb(c, account_id, instance_ids, ports, now_ms));
        /// Closes the ADB endpoints of instances of the account (they keep their ports);
        /// returns those that were open.
        fn stop_adb(&self, account_id: &str, instance_ids: &[String], now_ms: i64) -> Vec<String> =
            write (|c| stop_adb(c, account_id, instance_ids, now_ms));
        /// The open endpoints of an account's instances (not DELETED), newest first by the time
        /// they were opened; keyset-paginated.
        fn list_adb(&self, filter: &AdbFilter, page: &Page) -> Listing<InstanceAdb> =
            snapshot (|c| list_adb(c, filter, page));
        /// The ADB settings of the account's instances among `instance_ids` that have any.
        fn instances_adb(&self, account_id: &str, instance_ids: &[String]) -> Vec<InstanceAdb> =
            read (|c| instances_adb(c, account_id, instance_ids));
        /// What the gateway needs to know, on each incoming connection, about the phone behind
        /// gateway port `port`: `None` when no instance has it.
        fn adb_endpoint(&self, port: u16) -> Option<AdbEndpoint> = read (|c| adb_endpoint(c, port));
        /// [`AdbStore::adb_endpoint`] of several ports in one statement (the gateway's
        /// periodic check of its live connections): those that some instance has, in port
        /// order.
        fn adb_endpoints(&self, ports: &[u16]) -> Vec<AdbEndpoint> =
            read (|c| adb_endpoints(c, ports));
        /// [`FleetStore::create_groups`](crate::FleetStore::create_groups) with a key pair of
        /// the account attached to every new instance (`secure` 1), in one transaction: `false`
        /// (nothing created) when the key pair is not the account's.
        fn create_groups_with_key_pair(
            &self,
            groups: &[Group],
            instances: &[Instance],
            tasks: &[NewTask],
            instance_quota: Option<u64>,
            key_pair_id: &str,
            placement: Option<PlacementAsk>,
        ) -> bool = write (|c| create_groups_with_key_pair(
            c, groups, instances, tasks, instance_quota, key_pair_id, placement));
    }
}

/// The gateway's port range, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdbPorts {
    pub low: u16,
    pub high: u16,
}

impl AdbPorts {
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

/// What [`AdbStore::create_key_pair`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPairCreated {
    Created,
    /// Another key pair of the account has the name.
    NameTaken,
    /// The account has this many key pairs, the most it may have.
    Full {
        used: u64,
    },
}

/// What [`AdbStore::rename_key_pair`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rename {
    Renamed,
    NotFound,
    /// Another key pair of the account has the name; nothing changed.
    NameTaken,
}

/// What [`AdbStore::delete_key_pairs`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPairsDeleted {
    /// Every key pair is gone; these instances had one of them attached.
    Deleted { detached: Vec<String> },
    /// This id is not a key pair of the account: nothing was deleted.
    Missing(String),
}

/// What [`AdbStore::start_adb`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAdb {
    /// Every instance's endpoint is open, on these ports (in the order asked); `opened` are
    /// those that were closed before.
    Started {
        ports: Vec<(String, u16)>,
        opened: Vec<String>,
    },
    /// The range has too few free ports: no endpoint changed.
    NoFreePort,
}

/// An instance's ADB settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceAdb {
    pub instance_id: String,
    pub key_pair_id: Option<String>,
    /// Clients must sign with the attached key (SetAdbSecure's Status 1).
    pub secure: bool,
    /// The endpoint is open (StartInstanceAdb).
    pub started: bool,
    pub port: Option<u16>,
    /// When the endpoint was last opened.
    pub started_ms: Option<i64>,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// The phone behind a gateway port, as the gateway checks it on each connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbEndpoint {
    pub port: u16,
    pub instance_id: String,
    pub account_id: String,
    pub status: InstanceStatus,
    /// Which backend runs it.
    pub image_id: String,
    /// The endpoint is open: refuse every connection otherwise.
    pub started: bool,
    /// Clients must sign adbd's token with one of `public_keys`; anyone may connect otherwise.
    pub secure: bool,
    pub key_pair_id: Option<String>,
    /// `adbkey.pub` texts of the attached key pairs (at most one today).
    pub public_keys: Vec<String>,
    /// The host of the farm the phone lives on, and its adbd's port there (host network).
    pub host: Option<String>,
    pub adb_port: Option<u16>,
}

const ADB_COLUMNS: &str = "a.instance_id, a.key_pair_id, a.secure, a.started, a.port, \
     a.started_ms, a.created_ms, a.modified_ms";

fn instance_adb(r: &dyn Row) -> Result<InstanceAdb> {
    Ok(InstanceAdb {
        instance_id: r.text("instance_id")?,
        key_pair_id: r.text_opt("key_pair_id")?,
        secure: r.int("secure")? != 0,
        started: r.flag("started")?,
        port: r.int_opt("port")?.map(port).transpose()?,
        started_ms: r.int_opt("started_ms")?,
        created_ms: r.int("created_ms")?,
        modified_ms: r.int("modified_ms")?,
    })
}

fn port(p: i64) -> Result<u16> {
    u16::try_from(p).map_err(|_| StoreError::Corrupt(format!("ADB port {p} out of range")))
}

const KEY_PAIR_COLUMNS: &str = "k.id, k.account_id, k.name, k.public_key, k.fingerprint, \
     k.created_ms";

fn key_pair(r: &dyn Row) -> Result<KeyPair> {
    Ok(KeyPair {
        id: r.text("id")?,
        account_id: r.text("account_id")?,
        name: r.text("name")?,
        public_key: r.text("public_key")?,
        fingerprint: r.text("fingerprint")?,
        created_ms: r.int("created_ms")?,
    })
}

async fn create_key_pair(c: &mut impl Conn, k: &KeyPair, max: u64) -> Result<KeyPairCreated> {
    // The account's lock makes the count and the insert one step on every node.
    c.lock(Lock::KeyPairs(&k.account_id)).await?;
    let q = c.with(
        "SELECT COUNT(*) FROM key_pairs WHERE account_id = ?",
        [v(&k.account_id)],
    );
    let used = u64::try_from(c.int(&q).await?).unwrap_or(0);
    if used >= max {
        return Ok(KeyPairCreated::Full { used });
    }
    let q = c.with(
        "INSERT INTO key_pairs (id, account_id, name, public_key, fingerprint, created_ms) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            v(&k.id),
            v(&k.account_id),
            v(&k.name),
            v(&k.public_key),
            v(&k.fingerprint),
            v(k.created_ms),
        ],
    );
    Ok(if c.execute(&q).await? == 1 {
        KeyPairCreated::Created
    } else {
        KeyPairCreated::NameTaken
    })
}

async fn list_key_pairs(
    c: &mut impl Conn,
    filter: &KeyPairFilter,
    page: &Page,
) -> Result<Listing<KeyPair>> {
    let where_ = |q: &mut Sql| {
        q.push(" FROM key_pairs k WHERE k.account_id = ")
            .bind(&filter.account_id)
            .and_in("k.id", filter.ids.iter().cloned())
            .and_contains("k.name", &filter.name);
    };
    let mut count = c.sql("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = c.sql("SELECT ");
    list.push(KEY_PAIR_COLUMNS);
    where_(&mut list);
    list.and_after("k.created_ms", "k.id", &page.after, false)
        .order_page("k.created_ms", "k.id", false, page.limit);
    let total = c.int(&count).await?;
    let items = c.rows(&list, key_pair).await?;
    let (items, next) = page_of(items, page.limit, |k| Cursor {
        ms: k.created_ms,
        id: k.id.clone(),
    });
    Ok(Listing { items, total, next })
}

async fn rename_key_pair(
    c: &mut impl Conn,
    account_id: &str,
    key_pair_id: &str,
    name: &str,
) -> Result<Rename> {
    c.lock(Lock::KeyPairs(account_id)).await?;
    let q = c.with(
        "SELECT id FROM key_pairs WHERE account_id = ? AND name = ?",
        [v(account_id), v(name)],
    );
    match c.row(&q, |r| r.text("id")).await? {
        Some(id) if id == key_pair_id => return Ok(Rename::Renamed),
        Some(_) => return Ok(Rename::NameTaken),
        None => {}
    }
    let q = c.with(
        "UPDATE key_pairs SET name = ? WHERE account_id = ? AND id = ?",
        [v(name), v(account_id), v(key_pair_id)],
    );
    Ok(if c.execute(&q).await? == 1 {
        Rename::Renamed
    } else {
        Rename::NotFound
    })
}

/// Locks the account's key pairs among `ids` (PostgreSQL; SQLite's writer is alone) and
/// returns the ids found.
async fn lock_key_pairs(
    c: &mut impl Conn,
    account_id: &str,
    ids: &[String],
) -> Result<HashSet<String>> {
    let mut q = c.sql("SELECT id FROM key_pairs WHERE account_id = ");
    q.bind(account_id).and_in("id", ids.iter().cloned());
    q.for_update();
    Ok(c.rows(&q, |r| r.text("id")).await?.into_iter().collect())
}

async fn delete_key_pairs(
    c: &mut impl Conn,
    account_id: &str,
    ids: &[String],
) -> Result<KeyPairsDeleted> {
    if ids.is_empty() {
        return Ok(KeyPairsDeleted::Deleted {
            detached: Vec::new(),
        });
    }
    let found = lock_key_pairs(c, account_id, ids).await?;
    if let Some(missing) = ids.iter().find(|id| !found.contains(*id)) {
        return Ok(KeyPairsDeleted::Missing(missing.clone()));
    }
    let mut q = c.sql("SELECT instance_id FROM instance_adb WHERE account_id = ");
    q.bind(account_id)
        .and_in("key_pair_id", ids.iter().cloned())
        .push(" ORDER BY instance_id");
    let detached = c.rows(&q, |r| r.text("instance_id")).await?;
    let mut q = c.sql("UPDATE instance_adb SET key_pair_id = NULL WHERE account_id = ");
    q.bind(account_id)
        .and_in("key_pair_id", ids.iter().cloned());
    c.execute(&q).await?;
    let mut q = c.sql("DELETE FROM key_pairs WHERE account_id = ");
    q.bind(account_id).and_in("id", ids.iter().cloned());
    c.execute(&q).await?;
    Ok(KeyPairsDeleted::Deleted { detached })
}

/// The account's live (not DELETED) instances among `ids`.
async fn live_instances(
    c: &mut impl Conn,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT id FROM instances WHERE account_id = ");
    q.bind(account_id)
        .push(" AND status != 'DELETED'")
        .and_in("id", ids.iter().cloned())
        .push(" ORDER BY id");
    c.rows(&q, |r| r.text("id")).await
}

/// Creates the missing `instance_adb` rows of `ids` (instances of `account_id`), with their
/// defaults: no key, not secure, closed, no port.
async fn ensure_rows(
    c: &mut impl Conn,
    account_id: &str,
    ids: &[String],
    now_ms: i64,
) -> Result<()> {
    for id in ids {
        let q = c.with(
            "INSERT INTO instance_adb (instance_id, account_id, created_ms, modified_ms) \
             VALUES (?, ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING",
            [v(id), v(account_id), v(now_ms), v(now_ms)],
        );
        c.execute(&q).await?;
    }
    Ok(())
}

async fn attach_key_pair(
    c: &mut impl Conn,
    account_id: &str,
    key_pair_id: &str,
    instance_ids: &[String],
    now_ms: i64,
) -> Result<Option<Vec<String>>> {
    let key = [key_pair_id.to_string()];
    if lock_key_pairs(c, account_id, &key).await?.is_empty() {
        return Ok(None);
    }
    let ids = live_instances(c, account_id, instance_ids).await?;
    ensure_rows(c, account_id, &ids, now_ms).await?;
    let changed = changed_rows(c, &ids, |r| {
        Ok(r.text_opt("key_pair_id")?.as_deref() != Some(key_pair_id) || r.int("secure")? != 1)
    })
    .await?;
    update_rows(c, &changed, now_ms, |q| {
        q.push("key_pair_id = ")
            .bind(key_pair_id)
            .push(", secure = 1");
    })
    .await?;
    Ok(Some(changed))
}

/// Sets what `assign` writes (`column = value, ...`) and `modified_ms` on the `instance_adb`
/// rows of `ids`, in one statement; nothing when `ids` is empty.
async fn update_rows(
    c: &mut impl Conn,
    ids: &[String],
    now_ms: i64,
    assign: impl FnOnce(&mut Sql),
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = c.sql("UPDATE instance_adb SET ");
    assign(&mut q);
    q.push(", modified_ms = ")
        .bind(now_ms)
        .push(" WHERE 1 = 1")
        .and_in("instance_id", ids.iter().cloned());
    c.execute(&q).await?;
    Ok(())
}

/// Those of `ids` (which have `instance_adb` rows) whose row `differs` says would change, in
/// id order.
async fn changed_rows(
    c: &mut impl Conn,
    ids: &[String],
    mut differs: impl FnMut(&dyn Row) -> Result<bool>,
) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT instance_id, key_pair_id, secure FROM instance_adb WHERE 1 = 1");
    q.and_in("instance_id", ids.iter().cloned())
        .push(" ORDER BY instance_id");
    let rows = c
        .rows(&q, |r| Ok((r.text("instance_id")?, differs(r)?)))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, changes)| changes.then_some(id))
        .collect())
}

async fn detach_key_pair(
    c: &mut impl Conn,
    account_id: &str,
    key_pair_id: &str,
    instance_ids: &[String],
    now_ms: i64,
) -> Result<Option<Vec<String>>> {
    let key = [key_pair_id.to_string()];
    if lock_key_pairs(c, account_id, &key).await?.is_empty() {
        return Ok(None);
    }
    if instance_ids.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut q = c.sql("SELECT instance_id FROM instance_adb WHERE account_id = ");
    q.bind(account_id)
        .push(" AND key_pair_id = ")
        .bind(key_pair_id)
        .and_in("instance_id", instance_ids.iter().cloned())
        .push(" ORDER BY instance_id");
    let detached = c.rows(&q, |r| r.text("instance_id")).await?;
    update_rows(c, &detached, now_ms, |q| {
        q.push("key_pair_id = NULL");
    })
    .await?;
    Ok(Some(detached))
}

async fn set_adb_secure(
    c: &mut impl Conn,
    account_id: &str,
    instance_ids: &[String],
    secure: bool,
    now_ms: i64,
) -> Result<Vec<String>> {
    let ids = live_instances(c, account_id, instance_ids).await?;
    ensure_rows(c, account_id, &ids, now_ms).await?;
    let want = i64::from(secure);
    let changed = changed_rows(c, &ids, |r| Ok(r.int("secure")? != want)).await?;
    update_rows(c, &changed, now_ms, |q| {
        q.push("secure = ").bind(want);
    })
    .await?;
    Ok(changed)
}

async fn start_adb(
    c: &mut impl Conn,
    account_id: &str,
    instance_ids: &[String],
    ports: AdbPorts,
    now_ms: i64,
) -> Result<StartAdb> {
    // One allocation at a time, on every node: the cursor's row is the lock.
    let mut q = c.sql("SELECT last_port FROM adb_port_cursor WHERE id = 1");
    q.for_update();
    let last = c.row(&q, |r| r.int("last_port")).await?.unwrap_or(0);
    // The ports of DELETED instances are free again.
    let mut q = c.sql("UPDATE instance_adb SET port = NULL, started = ");
    q.truth(false).push(
        " WHERE port IS NOT NULL AND EXISTS (SELECT 1 FROM instances i \
         WHERE i.id = instance_adb.instance_id AND i.status = 'DELETED')",
    );
    c.execute(&q).await?;

    let live: HashSet<String> = live_instances(c, account_id, instance_ids)
        .await?
        .into_iter()
        .collect();
    let current: HashMap<String, InstanceAdb> = instances_adb(c, account_id, instance_ids)
        .await?
        .into_iter()
        .map(|a| (a.instance_id.clone(), a))
        .collect();
    let q = c.with(
        "SELECT port FROM instance_adb WHERE port BETWEEN ? AND ?",
        [v(i64::from(ports.low)), v(i64::from(ports.high))],
    );
    let mut taken: HashSet<u16> = c
        .rows(&q, |r| port(r.int("port")?))
        .await?
        .into_iter()
        .collect();

    // Every port is chosen before anything is written: all or none.
    let mut cursor = u16::try_from(last).unwrap_or(0);
    let mut plan = Vec::with_capacity(live.len());
    let mut seen = HashSet::new();
    for id in instance_ids {
        if !live.contains(id) || !seen.insert(id) {
            continue;
        }
        let row = current.get(id);
        let kept = row.and_then(|r| r.port).filter(|p| ports.contains(*p));
        let port = match kept {
            Some(p) => p,
            None => match next_free(ports, cursor, &taken) {
                Some(p) => {
                    taken.insert(p);
                    cursor = p;
                    p
                }
                None => return Ok(StartAdb::NoFreePort),
            },
        };
        plan.push((id.clone(), port, row));
    }

    let new_rows: Vec<String> = plan
        .iter()
        .filter(|(_, _, row)| row.is_none())
        .map(|(id, _, _)| id.clone())
        .collect();
    ensure_rows(c, account_id, &new_rows, now_ms).await?;
    let mut given = Vec::with_capacity(plan.len());
    let mut opened = Vec::new();
    for (id, port, row) in plan {
        let was_started = row.is_some_and(|r| r.started);
        if !was_started {
            opened.push(id.clone());
        }
        if !was_started || row.and_then(|r| r.port) != Some(port) {
            let started_ms = match row {
                Some(r) if r.started => r.started_ms.unwrap_or(now_ms),
                _ => now_ms,
            };
            let mut q = c.sql("UPDATE instance_adb SET started = ");
            q.truth(true)
                .push(", port = ")
                .bind(i64::from(port))
                .push(", started_ms = ")
                .bind(started_ms)
                .push(", modified_ms = ")
                .bind(now_ms)
                .push(" WHERE instance_id = ")
                .bind(&id);
            c.execute(&q).await?;
        }
        given.push((id, port));
    }
    let q = c.with(
        "UPDATE adb_port_cursor SET last_port = ? WHERE id = 1",
        [v(i64::from(cursor))],
    );
    c.execute(&q).await?;
    Ok(StartAdb::Started {
        ports: given,
        opened,
    })
}

/// The first port of `ports` after `after` (wrapping) that is not `taken`.
fn next_free(ports: AdbPorts, after: u16, taken: &HashSet<u16>) -> Option<u16> {
    let span = u32::from(ports.high - ports.low) + 1;
    let start = if ports.contains(after) {
        u32::from(after - ports.low) + 1
    } else {
        0
    };
    (0..span)
        .map(|n| ports.low + ((start + n) % span) as u16)
        .find(|p| !taken.contains(p))
}

async fn stop_adb(
    c: &mut impl Conn,
    account_id: &str,
    instance_ids: &[String],
    now_ms: i64,
) -> Result<Vec<String>> {
    if instance_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT instance_id FROM instance_adb WHERE account_id = ");
    q.bind(account_id).push(" AND ");
    q.is("started", true)
        .and_in("instance_id", instance_ids.iter().cloned())
        .push(" ORDER BY instance_id");
    let stopped = c.rows(&q, |r| r.text("instance_id")).await?;
    update_rows(c, &stopped, now_ms, |q| {
        q.push("started = ").truth(false);
    })
    .await?;
    Ok(stopped)
}

async fn list_adb(
    c: &mut impl Conn,
    filter: &AdbFilter,
    page: &Page,
) -> Result<Listing<InstanceAdb>> {
    let where_ = |q: &mut Sql| {
        q.push(
            " FROM instance_adb a JOIN instances i ON i.id = a.instance_id \
             WHERE a.account_id = ",
        )
        .bind(&filter.account_id)
        .push(" AND ");
        q.is("a.started", true)
            .push(" AND i.status != 'DELETED'")
            .and_in("a.instance_id", filter.instance_ids.iter().cloned());
    };
    let mut count = c.sql("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = c.sql("SELECT ");
    list.push(ADB_COLUMNS);
    where_(&mut list);
    list.and_after("a.started_ms", "a.instance_id", &page.after, false)
        .order_page("a.started_ms", "a.instance_id", false, page.limit);
    let total = c.int(&count).await?;
    let items = c.rows(&list, instance_adb).await?;
    let (items, next) = page_of(items, page.limit, |a| Cursor {
        ms: a.started_ms.unwrap_or_default(),
        id: a.instance_id.clone(),
    });
    Ok(Listing { items, total, next })
}

async fn instances_adb(
    c: &mut impl Conn,
    account_id: &str,
    instance_ids: &[String],
) -> Result<Vec<InstanceAdb>> {
    if instance_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT ");
    q.push(ADB_COLUMNS)
        .push(" FROM instance_adb a WHERE a.account_id = ")
        .bind(account_id)
        .and_in("a.instance_id", instance_ids.iter().cloned())
        .push(" ORDER BY a.instance_id");
    c.rows(&q, instance_adb).await
}

const ENDPOINT_SELECT: &str = "SELECT a.port, a.instance_id, a.account_id, i.status, \
     i.image_id, a.started, a.secure, a.key_pair_id, k.public_key, i.host, \
     (SELECT hp.port FROM host_ports hp WHERE hp.instance_id = i.id AND hp.host = i.host) \
     AS host_port FROM instance_adb a \
     JOIN instances i ON i.id = a.instance_id \
     LEFT JOIN key_pairs k ON k.id = a.key_pair_id WHERE ";

fn endpoint(r: &dyn Row) -> Result<AdbEndpoint> {
    Ok(AdbEndpoint {
        port: port(r.int("port")?)?,
        instance_id: r.text("instance_id")?,
        account_id: r.text("account_id")?,
        status: parse("instance status", &r.text("status")?)?,
        image_id: r.text("image_id")?,
        started: r.flag("started")?,
        secure: r.int("secure")? != 0,
        key_pair_id: r.text_opt("key_pair_id")?,
        public_keys: r.text_opt("public_key")?.into_iter().collect(),
        host: r.text_opt("host")?,
        adb_port: r.int_opt("host_port")?.and_then(|p| u16::try_from(p).ok()),
    })
}

async fn adb_endpoint(c: &mut impl Conn, port_number: u16) -> Result<Option<AdbEndpoint>> {
    let mut q = c.sql(ENDPOINT_SELECT);
    q.push("a.port = ").bind(i64::from(port_number));
    c.row(&q, endpoint).await
}

async fn adb_endpoints(c: &mut impl Conn, ports: &[u16]) -> Result<Vec<AdbEndpoint>> {
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let ports: Vec<i64> = ports.iter().map(|p| i64::from(*p)).collect();
    let mut q = c.sql(ENDPOINT_SELECT);
    q.push("1 = 1")
        .and_in_ints("a.port", &ports)
        .push(" ORDER BY a.port");
    c.rows(&q, endpoint).await
}

async fn create_groups_with_key_pair(
    c: &mut impl Conn,
    groups: &[Group],
    instances: &[Instance],
    tasks: &[NewTask],
    instance_quota: Option<u64>,
    key_pair_id: &str,
    placement: Option<PlacementAsk>,
) -> Result<bool> {
    let Some(account_id) = instances.first().map(|i| i.account_id.as_str()) else {
        fleet::create_groups(c, groups, instances, tasks, instance_quota, placement).await?;
        return Ok(true);
    };
    let key = [key_pair_id.to_string()];
    if lock_key_pairs(c, account_id, &key).await?.is_empty() {
        return Ok(false);
    }
    fleet::create_groups(c, groups, instances, tasks, instance_quota, placement).await?;
    for i in instances {
        let q = c.with(
            "INSERT INTO instance_adb (instance_id, account_id, key_pair_id, secure, \
             created_ms, modified_ms) VALUES (?, ?, ?, 1, ?, ?)",
            [
                v(&i.id),
                v(&i.account_id),
                v(key_pair_id),
                v(i.created_ms),
                v(i.created_ms),
            ],
        );
        c.execute(&q).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_go_round_after_the_last_one_given() {
        let ports = AdbPorts {
            low: 100,
            high: 104,
        };
        let taken: HashSet<u16> = [101, 103].into();
        assert_eq!(next_free(ports, 0, &taken), Some(100));
        assert_eq!(next_free(ports, 100, &taken), Some(102));
        assert_eq!(next_free(ports, 102, &taken), Some(104));
        // After the top, from the bottom again.
        assert_eq!(next_free(ports, 104, &taken), Some(100));
        let all: HashSet<u16> = (100..=104).collect();
        assert_eq!(next_free(ports, 102, &all), None);
        let one = AdbPorts {
            low: 65535,
            high: 65535,
        };
        assert_eq!(next_free(one, 65535, &HashSet::new()), Some(65535));
        assert_eq!(next_free(one, 7, &[65535].into()), None);
    }
}
