//! A viewer's way in: its hello (the first message, within the hello timeout, carrying the
//! ticket), then the checks of docs/design.md §14.1 in their order, each refused with its own
//! close code: the ticket opens (4401, 4402), names this phone (4403), the phone is the
//! ticket's account's (4404) and RUNNING (4409), the ticket's access key and account are still
//! enabled (4403 `KeyRevoked`), and the store opens the session under the phone's lock, which
//! checks the ticket's epochs (4410) and the phone's viewer cap (4429).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use cloudphone_core::InstanceStatus;
use cloudphone_core::ids;
use cloudphone_core::resources::Instance;
use cloudphone_store::{NewStreamSession, Opened, StreamEpochs, StreamRole};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::protocol::{ClientMsg, Close, Want};
use crate::ticket::{Claims, TicketError};
use crate::{Streams, stale_before};

/// A session the store opened.
#[derive(Debug)]
pub(super) struct Admitted {
    pub id: String,
    pub claims: Claims,
    pub instance: Instance,
    pub role: StreamRole,
}

/// The ticket of the viewer's hello and what it can show. `Err(None)`: the viewer went away
/// first; `Err(Some)`: it sent something else (a `want` the server does not know included), or
/// nothing in time, or the node is closing.
pub(super) async fn hello(
    socket: &mut WebSocket,
    timeout: Duration,
    closing: &CancellationToken,
) -> Result<(String, Want), Option<Close>> {
    let first = async {
        loop {
            match socket.recv().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Err(None),
                // Control frames before the hello are allowed (tungstenite answers pings).
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str::<ClientMsg>(text.as_str()) {
                        Ok(ClientMsg::Hello { ticket, want }) => Ok((ticket, want)),
                        _ => Err(Some(Close::HELLO_EXPECTED)),
                    };
                }
                Some(Ok(Message::Binary(_))) => return Err(Some(Close::HELLO_EXPECTED)),
            }
        }
    };
    tokio::select! {
        _ = closing.cancelled() => Err(Some(Close::SHUTDOWN)),
        got = tokio::time::timeout(timeout, first) => got.unwrap_or(Err(Some(Close::HELLO_EXPECTED))),
    }
}

fn internal(e: impl std::fmt::Display) -> Close {
    warn!(error = %e, "a stream session could not be opened");
    Close::INTERNAL
}

/// Runs the checks and opens the session of `ticket` on the phone `instance_id` (the path's).
pub(super) async fn admit(
    streams: &Streams,
    ticket: &str,
    instance_id: &str,
    peer: &str,
) -> Result<Admitted, Close> {
    let now = cloudphone_core::time::now_ms();
    let claims = streams.tickets.open(ticket, now).map_err(|e| match e {
        TicketError::Expired => Close::TICKET_EXPIRED,
        TicketError::Malformed | TicketError::Forged => Close::TICKET_INVALID,
    })?;
    if claims.instance_id != instance_id {
        return Err(Close::NOT_FOR_THIS_PHONE);
    }
    let store = &streams.store;
    let instance = store
        .instance(instance_id)
        .await
        .map_err(internal)?
        .filter(|i| i.account_id == claims.account_id)
        .ok_or(Close::INSTANCE_NOT_FOUND)?;
    if instance.status != InstanceStatus::Running {
        return Err(Close::NOT_RUNNING);
    }
    let key_ok = store
        .access_key(&claims.key_id)
        .await
        .map_err(internal)?
        .is_some_and(|k| k.account_id == claims.account_id);
    if !key_ok {
        return Err(Close::KEY_REVOKED);
    }
    let id = ids::new_id(ids::STREAM_SESSION);
    let session = NewStreamSession {
        id: id.clone(),
        account_id: claims.account_id.clone(),
        instance_id: instance_id.to_string(),
        end_user_id: claims.end_user_id.clone(),
        key_id: claims.key_id.clone(),
        task_id: claims.task_id.clone(),
        node_id: streams.node_id.clone(),
        peer: peer.to_string(),
        opened_ms: now,
    };
    let epochs = StreamEpochs {
        phone: claims.epochs.phone,
        user: claims.epochs.user,
    };
    let opened = store
        .open_stream_session(
            &session,
            epochs,
            streams.limits.max_viewers_per_phone,
            stale_before(now),
        )
        .await
        .map_err(internal)?;
    match opened {
        Opened::Session { role } => Ok(Admitted {
            id,
            claims,
            instance,
            role,
        }),
        Opened::Revoked => Err(Close::TICKET_REVOKED),
        Opened::Full => Err(Close::TOO_MANY_VIEWERS),
    }
}
