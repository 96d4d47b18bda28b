//! Named leases (issue 24): work that one node at a time does for every node, other than
//! watching a docker host (that lease is on the host's row, [`super::hosts`]). Today: the
//! discovery and watching of an ADB group's devices, `adb:<group>`. A lease is taken when
//! nobody holds it or its holder let it expire, and each take bumps its epoch, so a holder can
//! tell that it lost the lease in between even if it got it back.

use crate::Result;
use crate::sql::conn::Conn;
use crate::sql::v;

area! {
    /// Named leases of the farm's nodes.
    pub trait LeaseStore {
        /// Takes lease `name` for `node` until `now + ttl` when nobody holds it or its holder's
        /// expired (the lease is made on first use); returns the new epoch, `None` when another
        /// node holds it, or `node` itself does (renew that instead).
        fn take_lease(&self, node: &str, name: &str, now_ms: i64, ttl_ms: i64) -> Option<i64> =
            autocommit (|c| take_lease(c, node, name, now_ms, ttl_ms));
        /// Extends every lease `node` holds to `now + ttl`; returns each kept, with its epoch,
        /// by name. A lease another node took over is not among them.
        fn renew_leases(&self, node: &str, now_ms: i64, ttl_ms: i64) -> Vec<(String, i64)> =
            autocommit (|c| renew_leases(c, node, now_ms, ttl_ms));
        /// Gives up lease `name` if `node` holds it at `epoch`; false otherwise.
        fn release_lease(&self, node: &str, name: &str, epoch: i64) -> bool =
            autocommit (|c| release_lease(c, node, name, epoch));
        /// Gives up every lease of `node` (it stops); returns how many.
        fn release_leases(&self, node: &str) -> u64 =
            autocommit (|c| release_leases(c, node));
    }
}

async fn take_lease(
    c: &mut impl Conn,
    node: &str,
    name: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<i64>> {
    let q = c.with(
        "INSERT INTO leases (name, owner_node, until_ms, epoch) VALUES (?, ?, ?, 1) \
         ON CONFLICT (name) DO UPDATE SET owner_node = excluded.owner_node, \
         until_ms = excluded.until_ms, epoch = leases.epoch + 1 \
         WHERE leases.owner_node IS NULL OR leases.until_ms < ? \
         RETURNING epoch",
        [v(name), v(node), v(now_ms + ttl_ms), v(now_ms)],
    );
    c.row(&q, |r| r.int("epoch")).await
}

async fn renew_leases(
    c: &mut impl Conn,
    node: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Vec<(String, i64)>> {
    let q = c.with(
        "UPDATE leases SET until_ms = ? WHERE owner_node = ? RETURNING name, epoch",
        [v(now_ms + ttl_ms), v(node)],
    );
    let mut kept = c
        .rows(&q, |r| Ok((r.text("name")?, r.int("epoch")?)))
        .await?;
    kept.sort();
    Ok(kept)
}

async fn release_lease(c: &mut impl Conn, node: &str, name: &str, epoch: i64) -> Result<bool> {
    let q = c.with(
        "UPDATE leases SET owner_node = NULL, until_ms = 0 \
         WHERE name = ? AND owner_node = ? AND epoch = ?",
        [v(name), v(node), v(epoch)],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn release_leases(c: &mut impl Conn, node: &str) -> Result<u64> {
    let q = c.with(
        "UPDATE leases SET owner_node = NULL, until_ms = 0 WHERE owner_node = ?",
        [v(node)],
    );
    c.execute(&q).await
}
