//! Signature nonces, written in groups. Every signed API call records one, and on SQLite every
//! write waits for the one writer; so the calls that arrive while a group is being written
//! share the next group's single statement and commit, instead of queueing one transaction
//! each behind the task engine's writes. A caller still returns only once its nonce is
//! committed: a replay is refused also after a crash.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::warn;

use crate::Result;

/// Nonces written in one statement, at most (three parameters each).
const GROUP_MAX: usize = 256;

/// One call's nonce, and where to answer whether it was new.
struct Pending {
    key_id: String,
    nonce: String,
    expires_ms: i64,
    reply: oneshot::Sender<Result<bool>>,
}

/// The sending side; the writing task ends when it is dropped.
#[derive(Debug)]
pub(super) struct NonceWriter {
    queue: mpsc::Sender<Pending>,
}

impl NonceWriter {
    /// Starts the task that writes groups through `pool`, taking `writer` for each.
    pub(super) fn start(pool: SqlitePool, writer: Arc<Mutex<()>>) -> NonceWriter {
        let (queue, pending) = mpsc::channel(4 * GROUP_MAX);
        tokio::spawn(write_groups(pool, writer, pending));
        NonceWriter { queue }
    }

    /// Records the nonce; false if it was recorded already (a replay).
    pub(super) async fn remember(
        &self,
        key_id: &str,
        nonce: &str,
        expires_ms: i64,
    ) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            key_id: key_id.to_string(),
            nonce: nonce.to_string(),
            expires_ms,
            reply,
        };
        let gone = || crate::StoreError::Database(sqlx::Error::PoolClosed);
        self.queue.send(pending).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write_groups(
    pool: SqlitePool,
    writer: Arc<Mutex<()>>,
    mut queue: mpsc::Receiver<Pending>,
) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while queue.recv_many(&mut group, GROUP_MAX).await > 0 {
        let written = {
            let _turn = writer.lock().await;
            insert(&pool, &group).await
        };
        match written {
            Ok(new) => {
                // Within a group the first of two equal nonces is the new one.
                let mut new = new;
                for p in group.drain(..) {
                    let fresh = new.remove(&(p.key_id.clone(), p.nonce.clone()));
                    let _ = p.reply.send(Ok(fresh));
                }
            }
            Err(e) => {
                warn!(error = %e, nonces = group.len(), "writing a group of nonces failed; writing them one by one");
                for p in group.drain(..) {
                    let one = {
                        let _turn = writer.lock().await;
                        insert(&pool, std::slice::from_ref(&p)).await
                    };
                    let _ = p.reply.send(one.map(|new| !new.is_empty()));
                }
            }
        }
    }
}

/// Inserts the nonces not recorded yet; returns those it inserted.
async fn insert(pool: &SqlitePool, group: &[Pending]) -> Result<HashSet<(String, String)>> {
    let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO nonces (key_id, nonce, expires_ms) ");
    qb.push_values(group, |mut row, p| {
        row.push_bind(&p.key_id)
            .push_bind(&p.nonce)
            .push_bind(p.expires_ms);
    });
    qb.push(" ON CONFLICT (key_id, nonce) DO NOTHING RETURNING key_id, nonce");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("key_id")?, r.try_get("nonce")?)))
        .collect()
}
