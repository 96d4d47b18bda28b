//! Simulated phones shared by nodes without a shared file system (issue 24, design §9): one
//! row per phone holding its checkout (the node that may touch its files, until a deadline),
//! the generation and manifest key of its files in the object store, and its small JSON
//! documents. A publish is fenced on the holder and the generation it read, so a node whose
//! checkout expired and was taken over can never overwrite what the new holder wrote.

use crate::Result;
use crate::sql::conn::Conn;
use crate::sql::v;

/// What a node sees of a phone when it takes the checkout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimCheckout {
    pub generation: i64,
    /// Object key of the generation's manifest; empty before the first publish.
    pub manifest: String,
    pub props: String,
    pub state: String,
    pub live: String,
}

/// A new generation of a phone's files, written by its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimPublish {
    /// The generation the holder's files came from; the row gets `generation + 1`.
    pub generation: i64,
    pub manifest: String,
    pub props: String,
    pub state: String,
    pub live: String,
}

area! {
    /// The checkouts and published state of simulated phones.
    pub trait SimStore {
        /// Takes (or keeps) the checkout of phone `id` for `node` until `now + ttl` when nobody
        /// holds it, `node` does, or its holder's expired; the phone's row is made on first
        /// use. Returns what was last published, `None` when another node holds it.
        fn sim_acquire(&self, id: &str, node: &str, now_ms: i64, ttl_ms: i64)
            -> Option<SimCheckout> = write (|c| sim_acquire(c, id, node, now_ms, ttl_ms));
        /// Extends `node`'s checkout of `id`; false when it no longer holds it.
        fn sim_renew(&self, id: &str, node: &str, now_ms: i64, ttl_ms: i64) -> bool =
            autocommit (|c| sim_renew(c, id, node, now_ms, ttl_ms));
        /// Records a new generation (`publish.generation + 1`) of `id`'s files and documents.
        /// Fenced: false (nothing written) unless `node` holds the checkout and the stored
        /// generation is still `publish.generation`.
        fn sim_publish(&self, id: &str, node: &str, publish: &SimPublish) -> bool =
            autocommit (|c| sim_publish(c, id, node, publish));
        /// Gives up `node`'s checkout of `id`; false when it did not hold it.
        fn sim_release(&self, id: &str, node: &str) -> bool =
            autocommit (|c| sim_release(c, id, node));
        /// Forgets phone `id` (deleted); its objects are the caller's to remove.
        fn sim_forget(&self, id: &str) -> bool = autocommit (|c| sim_forget(c, id));
        /// The generation last published of phone `id` (`None`: no row yet), read without
        /// taking the checkout: a live screen asks it often to know when to follow.
        fn sim_generation(&self, id: &str) -> Option<i64> = read (|c| sim_generation(c, id));
    }
}

async fn sim_acquire(
    c: &mut impl Conn,
    id: &str,
    node: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<SimCheckout>> {
    let q = c.with(
        "INSERT INTO sim_phones (instance_id) VALUES (?) ON CONFLICT (instance_id) DO NOTHING",
        [v(id)],
    );
    c.execute(&q).await?;
    let q = c.with(
        "UPDATE sim_phones SET holder = ?, held_until_ms = ? \
         WHERE instance_id = ? AND (holder IS NULL OR holder = ? OR held_until_ms < ?) \
         RETURNING generation, manifest, props, state, live",
        [v(node), v(now_ms + ttl_ms), v(id), v(node), v(now_ms)],
    );
    c.row(&q, |r| {
        Ok(SimCheckout {
            generation: r.int("generation")?,
            manifest: r.text("manifest")?,
            props: r.text("props")?,
            state: r.text("state")?,
            live: r.text("live")?,
        })
    })
    .await
}

async fn sim_renew(
    c: &mut impl Conn,
    id: &str,
    node: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool> {
    let q = c.with(
        "UPDATE sim_phones SET held_until_ms = ? WHERE instance_id = ? AND holder = ?",
        [v(now_ms + ttl_ms), v(id), v(node)],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn sim_publish(c: &mut impl Conn, id: &str, node: &str, p: &SimPublish) -> Result<bool> {
    let q = c.with(
        "UPDATE sim_phones SET generation = generation + 1, manifest = ?, props = ?, state = ?, \
         live = ?, live_version = live_version + 1 \
         WHERE instance_id = ? AND holder = ? AND generation = ?",
        [
            v(p.manifest.as_str()),
            v(p.props.as_str()),
            v(p.state.as_str()),
            v(p.live.as_str()),
            v(id),
            v(node),
            v(p.generation),
        ],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn sim_release(c: &mut impl Conn, id: &str, node: &str) -> Result<bool> {
    let q = c.with(
        "UPDATE sim_phones SET holder = NULL, held_until_ms = 0 \
         WHERE instance_id = ? AND holder = ?",
        [v(id), v(node)],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn sim_forget(c: &mut impl Conn, id: &str) -> Result<bool> {
    let q = c.with("DELETE FROM sim_phones WHERE instance_id = ?", [v(id)]);
    Ok(c.execute(&q).await? == 1)
}

async fn sim_generation(c: &mut impl Conn, id: &str) -> Result<Option<i64>> {
    let q = c.with(
        "SELECT generation FROM sim_phones WHERE instance_id = ?",
        [v(id)],
    );
    c.row(&q, |r| r.int("generation")).await
}
