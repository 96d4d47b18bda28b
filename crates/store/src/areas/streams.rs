//! Live screen sessions (issue 23): one row per viewer's WebSocket, with the heartbeat its node
//! writes every second, so that every node sees who watches a phone (`SessionStatus`), and the
//! *epochs* a connection ticket carries, which DisconnectAndroidInstance moves on so that every
//! ticket issued before it stops opening.
//!
//! Concurrency (PostgreSQL, several nodes): the writes that decide who watches and who controls
//! one phone (a session opened, control taken, the phone disconnected) take its `Screen` lock,
//! so a viewer count, the one controller and the epochs checked are never overtaken by another
//! node's write; the unique index on the live controller backs this up. On SQLite one writer
//! runs every write alone.

use std::collections::HashMap;

use crate::sql::conn::{Conn, Lock, Row};
use crate::sql::{Sql, page_of, v};
use crate::{Cursor, Listing, Page, Result, StoreError};

area! {
    /// Live screen sessions and the epochs of connection tickets.
    pub trait StreamStore {
        /// The current epochs of each of `instance_ids` (in that order) for `end_user_id`
        /// ("" for none): what a ticket issued now carries. A phone never disconnected is at
        /// 0, 0.
        fn stream_epochs(&self, instance_ids: &[String], end_user_id: &str)
            -> Vec<(String, StreamEpochs)> = read (|c| stream_epochs(c, instance_ids, end_user_id));
        /// Opens a session of a ticket issued under `epochs`, unless they are no longer current
        /// (`Revoked`) or the phone has `max_live` live sessions already (`Full`). Sessions of
        /// the phone not heard from since `stale_before` are ended first (`Lost`). The session
        /// controls the phone if no other live one does, else it watches.
        fn open_stream_session(
            &self,
            session: &NewStreamSession,
            epochs: StreamEpochs,
            max_live: u32,
            stale_before: i64,
        ) -> Opened = write (|c| open_stream_session(c, session, epochs, max_live, stale_before));
        /// A node's heartbeat for the sessions it holds: marks the live ones of `ids` heard
        /// from at `now_ms` and answers the state of each of `ids` that still has a row (a
        /// session ended elsewhere, or whose role changed, shows here); in id order.
        fn touch_stream_sessions(&self, ids: &[String], now_ms: i64) -> Vec<SessionState> =
            write (|c| touch_stream_sessions(c, ids, now_ms));
        /// The session takes control of its phone from whichever live session had it (which
        /// then watches). `false` when the session is not live.
        fn take_stream_control(&self, session_id: &str, now_ms: i64, stale_before: i64) -> bool =
            write (|c| take_stream_control(c, session_id, now_ms, stale_before));
        /// The session lets go of control (it watches on; nobody controls the phone until a
        /// session takes control or a new one opens). `false` when it was not in control.
        fn release_stream_control(&self, session_id: &str) -> bool =
            write (|c| release_stream_control(c, session_id));
        /// Ends those of `ids` that are live, with `reason`; returns how many.
        fn end_stream_sessions(&self, ids: &[String], reason: &str, now_ms: i64) -> u64 =
            write (|c| end_stream_sessions(c, ids, reason, now_ms));
        /// DisconnectAndroidInstance: for the account's instances among `instance_ids`, moves
        /// the epoch of `end_user_id` on (of the phone itself with `None`, so every user's
        /// tickets stop opening) and ends the live sessions it covers (`Disconnected`), in one
        /// transaction. Returns the sessions ended, in id order.
        fn disconnect_streams(
            &self,
            account_id: &str,
            instance_ids: &[String],
            end_user_id: Option<&str>,
            now_ms: i64,
        ) -> Vec<String> =
            write (|c| disconnect_streams(c, account_id, instance_ids, end_user_id, now_ms));
        /// The account's instances among `instance_ids` that have a live session heard from at
        /// or after `stale_before` (SessionStatus `connect`), in id order.
        fn live_stream_instances(
            &self,
            account_id: &str,
            instance_ids: &[String],
            stale_before: i64,
        ) -> Vec<String> = read (|c| live_stream_instances(c, account_id, instance_ids, stale_before));
        /// Sessions of an account, newest first by opening time; keyset-paginated.
        fn list_stream_sessions(&self, filter: &StreamSessionFilter, page: &Page)
            -> Listing<StreamSession> = snapshot (|c| list_stream_sessions(c, filter, page));
        /// Ends every live session not heard from since `stale_before` (`Lost`: its node is
        /// gone) and deletes the sessions that ended before `now_ms - keep_ms`.
        fn reap_stream_sessions(&self, now_ms: i64, stale_before: i64, keep_ms: i64) -> Reaped =
            write (|c| reap_stream_sessions(c, now_ms, stale_before, keep_ms));
    }
}

/// The `end_reason` of a session whose node stopped writing its heartbeat.
pub const SESSION_LOST: &str = "Lost";
/// The `end_reason` of a session DisconnectAndroidInstance ended.
pub const SESSION_DISCONNECTED: &str = "Disconnected";

/// The epoch key of the phone itself, beside those of its end users (whose ids cannot hold a
/// `*`).
const EVERY_USER: &str = "*";

/// A phone's epochs for one end user: the phone's own and the user's on that phone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StreamEpochs {
    pub phone: i64,
    pub user: i64,
}

/// What a session may do with the phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamRole {
    /// Its input reaches the phone; at most one live session of a phone controls it.
    Control,
    /// It watches.
    View,
}

impl StreamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamRole::Control => "control",
            StreamRole::View => "view",
        }
    }

    fn parse(s: &str) -> Result<StreamRole> {
        match s {
            "control" => Ok(StreamRole::Control),
            "view" => Ok(StreamRole::View),
            other => Err(StoreError::Corrupt(format!(
                "stream session role: unexpected value {other:?}"
            ))),
        }
    }
}

/// A session about to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStreamSession {
    /// `ss-...`
    pub id: String,
    pub account_id: String,
    pub instance_id: String,
    /// The ticket's `EndUserId` ("" for none).
    pub end_user_id: String,
    /// The access key the ticket was issued to.
    pub key_id: String,
    /// The ticket's `TaskId`.
    pub task_id: String,
    /// The node holding the WebSocket.
    pub node_id: String,
    /// The viewer's address.
    pub peer: String,
    pub opened_ms: i64,
}

/// What [`StreamStore::open_stream_session`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    Session {
        role: StreamRole,
    },
    /// The ticket's epochs are no longer current (DisconnectAndroidInstance since it was
    /// issued): nothing opened.
    Revoked,
    /// The phone has as many live sessions as it may: nothing opened.
    Full,
}

/// A session as its node's heartbeat sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    pub id: String,
    pub role: StreamRole,
    /// Why it ended, once it has (elsewhere: a Disconnect on another node, the reaper).
    pub ended_reason: Option<String>,
}

/// A session, live or ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSession {
    pub id: String,
    pub account_id: String,
    pub instance_id: String,
    pub end_user_id: String,
    pub key_id: String,
    pub task_id: String,
    pub node_id: String,
    pub peer: String,
    /// The role it has (or had when it ended).
    pub role: StreamRole,
    pub opened_ms: i64,
    pub heartbeat_ms: i64,
    pub ended_ms: Option<i64>,
    pub end_reason: Option<String>,
}

/// Which sessions [`StreamStore::list_stream_sessions`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StreamSessionFilter {
    pub account_id: String,
    /// An empty list does not filter.
    pub instance_ids: Vec<String>,
    /// Only sessions not ended and heard from at or after this time.
    pub live_since: Option<i64>,
}

/// What [`StreamStore::reap_stream_sessions`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Live sessions found stale and ended as `Lost`.
    pub lost: u64,
    /// Ended sessions deleted.
    pub deleted: u64,
}

const SESSION_COLUMNS: &str = "id, account_id, instance_id, end_user_id, key_id, task_id, \
     node_id, peer, role, opened_ms, heartbeat_ms, ended_ms, end_reason";

fn session(r: &dyn Row) -> Result<StreamSession> {
    Ok(StreamSession {
        id: r.text("id")?,
        account_id: r.text("account_id")?,
        instance_id: r.text("instance_id")?,
        end_user_id: r.text("end_user_id")?,
        key_id: r.text("key_id")?,
        task_id: r.text("task_id")?,
        node_id: r.text("node_id")?,
        peer: r.text("peer")?,
        role: StreamRole::parse(&r.text("role")?)?,
        opened_ms: r.int("opened_ms")?,
        heartbeat_ms: r.int("heartbeat_ms")?,
        ended_ms: r.int_opt("ended_ms")?,
        end_reason: r.text_opt("end_reason")?,
    })
}

async fn stream_epochs(
    c: &mut impl Conn,
    instance_ids: &[String],
    end_user_id: &str,
) -> Result<Vec<(String, StreamEpochs)>> {
    if instance_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT instance_id, end_user_id, generation FROM stream_epochs WHERE 1 = 1");
    q.and_in("instance_id", instance_ids.iter().cloned())
        .and_in("end_user_id", [EVERY_USER, end_user_id]);
    let rows = c
        .rows(&q, |r| {
            Ok((
                (r.text("instance_id")?, r.text("end_user_id")?),
                r.int("generation")?,
            ))
        })
        .await?;
    let found: HashMap<(String, String), i64> = rows.into_iter().collect();
    let of = |id: &str, user: &str| {
        found
            .get(&(id.to_string(), user.to_string()))
            .copied()
            .unwrap_or(0)
    };
    Ok(instance_ids
        .iter()
        .map(|id| {
            let epochs = StreamEpochs {
                phone: of(id, EVERY_USER),
                user: of(id, end_user_id),
            };
            (id.clone(), epochs)
        })
        .collect())
}

/// Ends the live sessions not heard from since `stale_before` (of one phone, or of all), as
/// `Lost`; returns how many.
async fn end_stale(
    c: &mut impl Conn,
    instance_id: Option<&str>,
    now_ms: i64,
    stale_before: i64,
) -> Result<u64> {
    let mut q = c.sql("UPDATE stream_sessions SET ended_ms = ");
    q.bind(now_ms)
        .push(", end_reason = ")
        .bind(SESSION_LOST)
        .push(" WHERE ended_ms IS NULL AND heartbeat_ms < ")
        .bind(stale_before);
    if let Some(id) = instance_id {
        q.push(" AND instance_id = ").bind(id);
    }
    c.execute(&q).await
}

async fn open_stream_session(
    c: &mut impl Conn,
    s: &NewStreamSession,
    epochs: StreamEpochs,
    max_live: u32,
    stale_before: i64,
) -> Result<Opened> {
    c.lock(Lock::Screen(&s.instance_id)).await?;
    end_stale(c, Some(&s.instance_id), s.opened_ms, stale_before).await?;
    let current = stream_epochs(c, std::slice::from_ref(&s.instance_id), &s.end_user_id).await?;
    if current.first().map(|(_, e)| *e) != Some(epochs) {
        return Ok(Opened::Revoked);
    }
    let q = c.with(
        "SELECT role FROM stream_sessions WHERE instance_id = ? AND ended_ms IS NULL",
        [v(&s.instance_id)],
    );
    let live = c.rows(&q, |r| StreamRole::parse(&r.text("role")?)).await?;
    if live.len() >= max_live as usize {
        return Ok(Opened::Full);
    }
    let role = if live.contains(&StreamRole::Control) {
        StreamRole::View
    } else {
        StreamRole::Control
    };
    let q = c.with(
        "INSERT INTO stream_sessions (id, account_id, instance_id, end_user_id, key_id, \
         task_id, node_id, peer, role, opened_ms, heartbeat_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            v(&s.id),
            v(&s.account_id),
            v(&s.instance_id),
            v(&s.end_user_id),
            v(&s.key_id),
            v(&s.task_id),
            v(&s.node_id),
            v(&s.peer),
            v(role.as_str()),
            v(s.opened_ms),
            v(s.opened_ms),
        ],
    );
    c.execute(&q).await?;
    Ok(Opened::Session { role })
}

async fn touch_stream_sessions(
    c: &mut impl Conn,
    ids: &[String],
    now_ms: i64,
) -> Result<Vec<SessionState>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("UPDATE stream_sessions SET heartbeat_ms = ");
    q.bind(now_ms)
        .push(" WHERE ended_ms IS NULL")
        .and_in("id", ids.iter().cloned());
    c.execute(&q).await?;
    let mut q = c.sql("SELECT id, role, ended_ms, end_reason FROM stream_sessions WHERE 1 = 1");
    q.and_in("id", ids.iter().cloned()).push(" ORDER BY id");
    c.rows(&q, |r| {
        Ok(SessionState {
            id: r.text("id")?,
            role: StreamRole::parse(&r.text("role")?)?,
            ended_reason: match r.int_opt("ended_ms")? {
                None => None,
                Some(_) => Some(r.text_opt("end_reason")?.unwrap_or_default()),
            },
        })
    })
    .await
}

/// The phone of a session, and whether the session is live.
async fn session_phone(c: &mut impl Conn, session_id: &str) -> Result<Option<(String, bool)>> {
    let q = c.with(
        "SELECT instance_id, ended_ms FROM stream_sessions WHERE id = ?",
        [v(session_id)],
    );
    c.row(&q, |r| {
        Ok((r.text("instance_id")?, r.int_opt("ended_ms")?.is_none()))
    })
    .await
}

async fn take_stream_control(
    c: &mut impl Conn,
    session_id: &str,
    now_ms: i64,
    stale_before: i64,
) -> Result<bool> {
    let Some((instance_id, _)) = session_phone(c, session_id).await? else {
        return Ok(false);
    };
    c.lock(Lock::Screen(&instance_id)).await?;
    // The session asking is heard from now, whatever its last beat: it is not ended as stale.
    let q = c.with(
        "UPDATE stream_sessions SET heartbeat_ms = ? WHERE id = ? AND ended_ms IS NULL",
        [v(now_ms), v(session_id)],
    );
    if c.execute(&q).await? == 0 {
        return Ok(false);
    }
    end_stale(c, Some(&instance_id), now_ms, stale_before).await?;
    let q = c.with(
        "UPDATE stream_sessions SET role = ? WHERE instance_id = ? AND ended_ms IS NULL \
         AND role = ? AND id != ?",
        [
            v(StreamRole::View.as_str()),
            v(&instance_id),
            v(StreamRole::Control.as_str()),
            v(session_id),
        ],
    );
    c.execute(&q).await?;
    let q = c.with(
        "UPDATE stream_sessions SET role = ? WHERE id = ?",
        [v(StreamRole::Control.as_str()), v(session_id)],
    );
    c.execute(&q).await?;
    Ok(true)
}

async fn release_stream_control(c: &mut impl Conn, session_id: &str) -> Result<bool> {
    let q = c.with(
        "UPDATE stream_sessions SET role = ? WHERE id = ? AND role = ? AND ended_ms IS NULL",
        [
            v(StreamRole::View.as_str()),
            v(session_id),
            v(StreamRole::Control.as_str()),
        ],
    );
    Ok(c.execute(&q).await? > 0)
}

async fn end_stream_sessions(
    c: &mut impl Conn,
    ids: &[String],
    reason: &str,
    now_ms: i64,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    end_rows(c, ids, reason, now_ms).await
}

/// Ends the live sessions among `ids` (not empty) with `reason`.
async fn end_rows(c: &mut impl Conn, ids: &[String], reason: &str, now_ms: i64) -> Result<u64> {
    let mut q = c.sql("UPDATE stream_sessions SET ended_ms = ");
    q.bind(now_ms)
        .push(", end_reason = ")
        .bind(reason)
        .push(" WHERE ended_ms IS NULL")
        .and_in("id", ids.iter().cloned());
    c.execute(&q).await
}

async fn disconnect_streams(
    c: &mut impl Conn,
    account_id: &str,
    instance_ids: &[String],
    end_user_id: Option<&str>,
    now_ms: i64,
) -> Result<Vec<String>> {
    if instance_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT id FROM instances WHERE account_id = ");
    q.bind(account_id)
        .and_in("id", instance_ids.iter().cloned())
        .push(" ORDER BY id");
    let phones = c.rows(&q, |r| r.text("id")).await?;
    if phones.is_empty() {
        return Ok(Vec::new());
    }
    // In id order on every node, so two disconnects of overlapping phones cannot deadlock.
    for id in &phones {
        c.lock(Lock::Screen(id)).await?;
    }
    let epoch_key = end_user_id.unwrap_or(EVERY_USER);
    for id in &phones {
        let q = c.with(
            "INSERT INTO stream_epochs (instance_id, end_user_id, generation) VALUES (?, ?, 1) \
             ON CONFLICT (instance_id, end_user_id) \
             DO UPDATE SET generation = stream_epochs.generation + 1",
            [v(id), v(epoch_key)],
        );
        c.execute(&q).await?;
    }
    let mut q = c.sql("SELECT id FROM stream_sessions WHERE ended_ms IS NULL");
    q.and_in("instance_id", phones.iter().cloned());
    if let Some(user) = end_user_id {
        q.push(" AND end_user_id = ").bind(user);
    }
    q.push(" ORDER BY id");
    let ended = c.rows(&q, |r| r.text("id")).await?;
    if !ended.is_empty() {
        end_rows(c, &ended, SESSION_DISCONNECTED, now_ms).await?;
    }
    Ok(ended)
}

async fn live_stream_instances(
    c: &mut impl Conn,
    account_id: &str,
    instance_ids: &[String],
    stale_before: i64,
) -> Result<Vec<String>> {
    if instance_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql("SELECT DISTINCT instance_id FROM stream_sessions WHERE account_id = ");
    q.bind(account_id)
        .push(" AND ended_ms IS NULL AND heartbeat_ms >= ")
        .bind(stale_before)
        .and_in("instance_id", instance_ids.iter().cloned())
        .push(" ORDER BY instance_id");
    c.rows(&q, |r| r.text("instance_id")).await
}

async fn list_stream_sessions(
    c: &mut impl Conn,
    filter: &StreamSessionFilter,
    page: &Page,
) -> Result<Listing<StreamSession>> {
    let where_ = |q: &mut Sql| {
        q.push(" FROM stream_sessions WHERE account_id = ")
            .bind(&filter.account_id)
            .and_in("instance_id", filter.instance_ids.iter().cloned());
        if let Some(since) = filter.live_since {
            q.push(" AND ended_ms IS NULL AND heartbeat_ms >= ")
                .bind(since);
        }
    };
    let mut count = c.sql("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = c.sql("SELECT ");
    list.push(SESSION_COLUMNS);
    where_(&mut list);
    list.and_after("opened_ms", "id", &page.after, false)
        .order_page("opened_ms", "id", false, page.limit);
    let total = c.int(&count).await?;
    let items = c.rows(&list, session).await?;
    let (items, next) = page_of(items, page.limit, |s| Cursor {
        ms: s.opened_ms,
        id: s.id.clone(),
    });
    Ok(Listing { items, total, next })
}

async fn reap_stream_sessions(
    c: &mut impl Conn,
    now_ms: i64,
    stale_before: i64,
    keep_ms: i64,
) -> Result<Reaped> {
    let lost = end_stale(c, None, now_ms, stale_before).await?;
    let q = c.with(
        "DELETE FROM stream_sessions WHERE ended_ms IS NOT NULL AND ended_ms < ?",
        [v(now_ms.saturating_sub(keep_ms))],
    );
    let deleted = c.execute(&q).await?;
    Ok(Reaped { lost, deleted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_stored_by_name() {
        for role in [StreamRole::Control, StreamRole::View] {
            assert_eq!(StreamRole::parse(role.as_str()).unwrap(), role);
        }
        assert!(StreamRole::parse("admin").is_err());
    }
}
