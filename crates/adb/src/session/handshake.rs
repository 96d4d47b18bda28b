//! The handshake as a connection runs it: the state machine of [`crate::proto::handshake`]
//! fed with what the host sends, under the deadline, with the authorizer's answers. Every
//! message counts against `Config::max_handshake_messages` and every offered key and refused
//! signature against `Config::max_auth_attempts`, so a host that cannot sign costs a bounded
//! amount of work whatever it sends before the deadline. The keys a connection may sign with
//! are asked of the authorizer once, at the first signature
//! ([`super::Authorizer::keys_for_connection`]), when it offers them.

use tokio::io::AsyncRead;
use tokio::time::{Instant, timeout_at};
use tracing::debug;

use super::conn::Conn;
use super::reader::read_packet;
use super::{Authorizer, Config, ConnectionHandle, SessionError};
use crate::keys::AdbPublicKey;
use crate::proto::handshake::{Handshake, HandshakeConfig, Negotiated, Step, TOKEN_SIZE};
use crate::proto::packet::Packet;

/// The host is in: our CNXN (not sent yet: the device may still name its banner) and what
/// was agreed.
pub(super) struct Admitted {
    pub(super) cnxn: Packet,
    pub(super) negotiated: Negotiated,
}

/// How signatures are checked on this connection.
enum Keys<I> {
    /// No signature yet.
    Unasked,
    /// The authorizer's keys, checked here.
    Listed(Vec<(AdbPublicKey, I)>),
    /// The authorizer checks each signature itself.
    PerSignature,
}

/// Runs the handshake; `None` if the host left during it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn handshake<R, A>(
    r: &mut R,
    max_payload: u32,
    config: &Config,
    authorizer: &A,
    conn: &Conn,
    handle: &ConnectionHandle,
    identity: &mut Option<A::Identity>,
    deadline: Instant,
) -> Result<Option<Admitted>, SessionError>
where
    R: AsyncRead + Unpin,
    A: Authorizer,
{
    let late = |_| SessionError::HandshakeTimeout(config.handshake_timeout);
    let auth_required = timeout_at(deadline, authorizer.auth_required())
        .await
        .map_err(late)?;
    let mut hs = Handshake::new(HandshakeConfig {
        banner: config.banner.encode()?,
        max_payload,
        auth_required,
        max_auth_attempts: config.max_auth_attempts,
    })
    .with_max_messages(config.max_handshake_messages);
    let mut keys = Keys::Unasked;
    // A token is drawn inside the state machine; a failure is reported after it returns and
    // before anything is sent, so a zero token never leaves.
    let rng_error = std::sync::Mutex::new(None);
    let mut fresh = || {
        let mut token = [0u8; TOKEN_SIZE];
        if let Err(e) = getrandom::fill(&mut token) {
            *rng_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        token
    };
    loop {
        let read = read_packet(r, hs.max_incoming(), hs.negotiated_version(), handle);
        let Some(packet) = timeout_at(deadline, read).await.map_err(late)?? else {
            return Ok(None);
        };
        let step = match hs.on_packet(&packet, &mut fresh)? {
            None => continue,
            Some(Step::PublicKey(key)) => {
                debug!("adb host offered a public key we do not know");
                timeout_at(deadline, authorizer.public_key_offered(&key))
                    .await
                    .map_err(late)?;
                continue;
            }
            Some(Step::Verify { token, signature }) => {
                if let Keys::Unasked = keys {
                    keys = match timeout_at(deadline, authorizer.keys_for_connection())
                        .await
                        .map_err(late)?
                    {
                        Some(listed) => Keys::Listed(listed),
                        None => Keys::PerSignature,
                    };
                }
                let verdict = match &mut keys {
                    Keys::Listed(listed) => listed
                        .iter()
                        .position(|(key, _)| key.verify_auth(&token, &signature))
                        .map(|i| listed.swap_remove(i).1),
                    _ => timeout_at(deadline, authorizer.verify(&token, &signature))
                        .await
                        .map_err(late)?,
                };
                let accepted = verdict.is_some();
                if accepted {
                    *identity = verdict;
                } else {
                    debug!("adb host signature refused");
                }
                hs.on_verdict(accepted, &mut fresh)?
            }
            Some(step) => step,
        };
        if let Some(e) = rng_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(SessionError::Random(e));
        }
        conn.version
            .store(hs.version(), std::sync::atomic::Ordering::Relaxed);
        match step {
            Step::Send(p) => conn.outbox.send(p),
            Step::Online { cnxn, negotiated } => {
                return Ok(Some(Admitted { cnxn, negotiated }));
            }
            // on_packet's other steps were handled above; on_verdict returns no others.
            Step::Verify { .. } | Step::PublicKey(_) => {}
        }
    }
}
