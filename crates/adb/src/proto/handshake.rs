//! The device side of the handshake as a state machine without I/O: the host's CNXN, then,
//! when authentication is required, AUTH TOKEN (20 random bytes) answered by SIGNATURE until a
//! signature verifies, then our CNXN. Verification is the caller's (an `Authorizer`): the
//! machine asks for it with [`Step::Verify`] and is told the verdict, so a public key the host
//! offers (RSAPUBLICKEY) is reported and never trusted. Randomness comes from the caller too,
//! which keeps the machine deterministic under a fuzzer.
//!
//! What an unauthenticated host can make us do is bounded twice: every refused signature,
//! offered key and restarted handshake is an attempt (at most `max_auth_attempts`), and every
//! message before we are online counts (at most [`Handshake::with_max_messages`], by default
//! [`DEFAULT_MAX_MESSAGES`]), whatever it is, so a host cannot keep us parsing until the
//! deadline.

use thiserror::Error;

use super::banner::{Banner, parse_banner};
use super::packet::{Command, MAX_PAYLOAD_V1, Packet, VERSION, VERSION_MIN};

/// The size of the token adbd asks the host to sign.
pub const TOKEN_SIZE: usize = 20;
/// AUTH arg0: a token to sign (device to host).
pub const AUTH_TOKEN: u32 = 1;
/// AUTH arg0: a signature of the last token (host to device).
pub const AUTH_SIGNATURE: u32 = 2;
/// AUTH arg0: the host's public key, sent once it has no key left to sign with.
pub const AUTH_RSAPUBLICKEY: u32 = 3;
/// Messages a host may send before it is online: adb sends a CNXN, a signature per key it
/// has and one public key; it may start over once or twice.
pub const DEFAULT_MAX_MESSAGES: u32 = 64;

/// What the handshake needs to know of the device.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// Our CNXN payload ([`super::banner::DeviceBanner::encode`]).
    pub banner: String,
    /// The largest payload we accept once online.
    pub max_payload: u32,
    /// When false the host's CNXN is answered at once.
    pub auth_required: bool,
    /// Refused signatures, offered public keys and restarted handshakes before the
    /// connection is dropped; adb hosts try each of their keys once, then offer one, so a few
    /// suffice.
    pub max_auth_attempts: u32,
}

/// What both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: u32,
    /// The largest payload either side may send.
    pub max_payload: u32,
    pub host: Banner,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send(Packet),
    /// Check `signature` over `token`, then call [`Handshake::on_verdict`].
    Verify {
        token: [u8; TOKEN_SIZE],
        signature: Vec<u8>,
    },
    /// The host has no key we accept and offers this one (`adbkey.pub` text). Stock adbd would
    /// ask the user; we only report it, and the host stays unauthorized.
    PublicKey(Vec<u8>),
    /// Send `cnxn`; the connection is online.
    Online {
        cnxn: Packet,
        negotiated: Negotiated,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    #[error("host protocol version {0:#x} is older than any adb")]
    Version(u32),
    #[error("host accepts payloads of only {0} bytes")]
    MaxPayload(u32),
    #[error("AUTH of type {0}, which a host does not send")]
    AuthType(u32),
    #[error("{0} authentication attempts failed")]
    TooManyAttempts(u32),
    #[error("more than {0} messages before the handshake ended")]
    TooManyMessages(u32),
    #[error("{0} out of order")]
    OutOfOrder(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AwaitCnxn,
    AwaitAuth { token: [u8; TOKEN_SIZE] },
    Verifying,
    Online,
}

/// One connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    config: HandshakeConfig,
    state: State,
    negotiated: Option<Negotiated>,
    attempts: u32,
    messages: u32,
    max_messages: u32,
}

impl Handshake {
    pub fn new(config: HandshakeConfig) -> Handshake {
        Handshake {
            config,
            state: State::AwaitCnxn,
            negotiated: None,
            attempts: 0,
            messages: 0,
            max_messages: DEFAULT_MAX_MESSAGES,
        }
    }

    /// At most `max` messages before online (at least 1); more fail the handshake.
    pub fn with_max_messages(mut self, max: u32) -> Handshake {
        self.max_messages = max.max(1);
        self
    }

    /// The protocol version in effect for what we send: the first one until the host's CNXN.
    pub fn version(&self) -> u32 {
        self.negotiated_version().unwrap_or(VERSION_MIN)
    }

    /// The negotiated version, once the host's CNXN was read (the checksum rule for what we
    /// receive, [`super::packet::version_for`]).
    pub fn negotiated_version(&self) -> Option<u32> {
        self.negotiated.as_ref().map(|n| n.version)
    }

    /// The largest payload to accept now: a handshake message fits in 4096 bytes (the host
    /// cannot know more before our CNXN), which also bounds what an unauthenticated client can
    /// make us allocate.
    pub fn max_incoming(&self) -> u32 {
        match (&self.state, &self.negotiated) {
            (State::Online, Some(n)) => n.max_payload,
            _ => MAX_PAYLOAD_V1,
        }
    }

    pub fn is_online(&self) -> bool {
        self.state == State::Online
    }

    /// Feeds one received message. `Ok(None)`: nothing to do (protocol.txt: anything before a
    /// CNXN is ignored, as are stream messages before the connection is online).
    pub fn on_packet(
        &mut self,
        packet: &Packet,
        fresh_token: &mut dyn FnMut() -> [u8; TOKEN_SIZE],
    ) -> Result<Option<Step>, HandshakeError> {
        if self.state != State::Online {
            self.messages += 1;
            if self.messages > self.max_messages {
                return Err(HandshakeError::TooManyMessages(self.max_messages));
            }
        }
        match (&self.state, packet.command) {
            (State::Verifying, _) => Err(HandshakeError::OutOfOrder("a message during a check")),
            (State::Online, Command::Cnxn) => {
                Err(HandshakeError::OutOfOrder("CNXN after the handshake"))
            }
            (State::Online, _) => Ok(None),
            (_, Command::Cnxn) => self.on_cnxn(packet, fresh_token).map(Some),
            (State::AwaitAuth { token }, Command::Auth) => match packet.arg0 {
                AUTH_SIGNATURE => {
                    let token = *token;
                    self.state = State::Verifying;
                    Ok(Some(Step::Verify {
                        token,
                        signature: packet.payload.clone(),
                    }))
                }
                AUTH_RSAPUBLICKEY => {
                    // Each offer is reported (and a gateway parses it): an attempt like any.
                    self.count_attempt()?;
                    let end = packet
                        .payload
                        .iter()
                        .rposition(|b| *b != 0)
                        .map(|i| i + 1)
                        .unwrap_or(0);
                    Ok(Some(Step::PublicKey(packet.payload[..end].to_vec())))
                }
                other => Err(HandshakeError::AuthType(other)),
            },
            _ => Ok(None),
        }
    }

    /// The verdict on the signature of the last [`Step::Verify`].
    pub fn on_verdict(
        &mut self,
        accepted: bool,
        fresh_token: &mut dyn FnMut() -> [u8; TOKEN_SIZE],
    ) -> Result<Step, HandshakeError> {
        if self.state != State::Verifying {
            return Err(HandshakeError::OutOfOrder("a verdict"));
        }
        if accepted {
            return Ok(self.online());
        }
        self.count_attempt()?;
        Ok(self.ask(fresh_token()))
    }

    fn count_attempt(&mut self) -> Result<(), HandshakeError> {
        self.attempts += 1;
        if self.attempts >= self.config.max_auth_attempts {
            return Err(HandshakeError::TooManyAttempts(self.attempts));
        }
        Ok(())
    }

    fn on_cnxn(
        &mut self,
        packet: &Packet,
        fresh_token: &mut dyn FnMut() -> [u8; TOKEN_SIZE],
    ) -> Result<Step, HandshakeError> {
        if packet.arg0 < VERSION_MIN {
            return Err(HandshakeError::Version(packet.arg0));
        }
        if packet.arg1 < MAX_PAYLOAD_V1 {
            return Err(HandshakeError::MaxPayload(packet.arg1));
        }
        if self.negotiated.is_some() {
            // A host starting over: adbd allows it, but it must not be a free retry.
            self.count_attempt()?;
        }
        self.negotiated = Some(Negotiated {
            version: packet.arg0.min(VERSION),
            max_payload: packet.arg1.min(self.config.max_payload),
            host: parse_banner(&packet.payload),
        });
        if !self.config.auth_required {
            return Ok(self.online());
        }
        Ok(self.ask(fresh_token()))
    }

    fn ask(&mut self, token: [u8; TOKEN_SIZE]) -> Step {
        self.state = State::AwaitAuth { token };
        Step::Send(Packet::new(Command::Auth, AUTH_TOKEN, 0, token.to_vec()))
    }

    fn online(&mut self) -> Step {
        self.state = State::Online;
        let negotiated = self
            .negotiated
            .clone()
            .expect("online only after a CNXN was negotiated");
        Step::Online {
            cnxn: Packet::new(
                Command::Cnxn,
                VERSION,
                negotiated.max_payload,
                self.config.banner.as_bytes().to_vec(),
            ),
            negotiated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::packet::MAX_PAYLOAD;

    fn config(auth: bool) -> HandshakeConfig {
        HandshakeConfig {
            banner: "device::features=shell_v2".into(),
            max_payload: 256 * 1024,
            auth_required: auth,
            max_auth_attempts: 3,
        }
    }

    fn host_cnxn() -> Packet {
        Packet::new(
            Command::Cnxn,
            VERSION,
            MAX_PAYLOAD,
            b"host::features=shell_v2,cmd\0".to_vec(),
        )
    }

    fn counter() -> impl FnMut() -> [u8; TOKEN_SIZE] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; TOKEN_SIZE]
        }
    }

    #[test]
    fn without_auth_cnxn_is_answered_at_once() {
        let mut hs = Handshake::new(config(false));
        let mut tokens = counter();
        assert_eq!(hs.max_incoming(), MAX_PAYLOAD_V1);
        let Some(Step::Online { cnxn, negotiated }) =
            hs.on_packet(&host_cnxn(), &mut tokens).unwrap()
        else {
            panic!("not online")
        };
        assert_eq!(cnxn.command, Command::Cnxn);
        assert_eq!(cnxn.arg0, VERSION);
        assert_eq!(cnxn.arg1, 256 * 1024);
        assert_eq!(cnxn.payload, b"device::features=shell_v2");
        assert_eq!(negotiated.max_payload, 256 * 1024);
        assert!(negotiated.host.has_feature("cmd"));
        assert!(hs.is_online());
        assert_eq!(hs.max_incoming(), 256 * 1024);
        // A second CNXN on a live connection is refused.
        assert!(hs.on_packet(&host_cnxn(), &mut tokens).is_err());
    }

    #[test]
    fn messages_before_cnxn_are_ignored() {
        let mut hs = Handshake::new(config(true));
        let mut tokens = counter();
        for p in [
            Packet::new(Command::Open, 1, 0, b"shell:id".to_vec()),
            Packet::new(Command::Auth, AUTH_SIGNATURE, 0, vec![1; 256]),
            Packet::new(Command::Wrte, 1, 1, vec![]),
        ] {
            assert_eq!(hs.on_packet(&p, &mut tokens), Ok(None));
        }
        assert!(!hs.is_online());
    }

    #[test]
    fn signature_is_verified_by_the_caller() {
        let mut hs = Handshake::new(config(true));
        let mut tokens = counter();
        let Some(Step::Send(auth)) = hs.on_packet(&host_cnxn(), &mut tokens).unwrap() else {
            panic!()
        };
        assert_eq!(
            (auth.command, auth.arg0, auth.payload.len()),
            (Command::Auth, AUTH_TOKEN, TOKEN_SIZE)
        );
        let sig = Packet::new(Command::Auth, AUTH_SIGNATURE, 0, vec![9; 256]);
        let Some(Step::Verify { token, signature }) = hs.on_packet(&sig, &mut tokens).unwrap()
        else {
            panic!()
        };
        assert_eq!(token.to_vec(), auth.payload);
        assert_eq!(signature, vec![9; 256]);
        // Refused: a fresh token.
        let Step::Send(again) = hs.on_verdict(false, &mut tokens).unwrap() else {
            panic!()
        };
        assert_ne!(again.payload, auth.payload);
        hs.on_packet(&sig, &mut tokens).unwrap();
        let Step::Online { .. } = hs.on_verdict(true, &mut tokens).unwrap() else {
            panic!()
        };
        assert!(hs.is_online());
    }

    #[test]
    fn public_key_is_reported_never_accepted() {
        let mut hs = Handshake::new(config(true));
        let mut tokens = counter();
        hs.on_packet(&host_cnxn(), &mut tokens).unwrap();
        let key = Packet::new(
            Command::Auth,
            AUTH_RSAPUBLICKEY,
            0,
            b"QAAA user@host\0".to_vec(),
        );
        assert_eq!(
            hs.on_packet(&key, &mut tokens),
            Ok(Some(Step::PublicKey(b"QAAA user@host".to_vec())))
        );
        assert!(!hs.is_online());
        assert_eq!(hs.max_incoming(), MAX_PAYLOAD_V1);
    }

    #[test]
    fn failed_attempts_are_bounded() {
        let mut hs = Handshake::new(config(true));
        let mut tokens = counter();
        hs.on_packet(&host_cnxn(), &mut tokens).unwrap();
        let sig = Packet::new(Command::Auth, AUTH_SIGNATURE, 0, vec![0; 256]);
        hs.on_packet(&sig, &mut tokens).unwrap();
        hs.on_verdict(false, &mut tokens).unwrap();
        // Starting over counts as an attempt too.
        hs.on_packet(&host_cnxn(), &mut tokens).unwrap();
        hs.on_packet(&sig, &mut tokens).unwrap();
        assert_eq!(
            hs.on_verdict(false, &mut tokens),
            Err(HandshakeError::TooManyAttempts(3))
        );
    }

    /// Each offered key is an attempt: a host cannot have us parse keys until the deadline.
    #[test]
    fn public_keys_count_as_attempts() {
        let mut hs = Handshake::new(config(true));
        let mut tokens = counter();
        hs.on_packet(&host_cnxn(), &mut tokens).unwrap();
        let key = Packet::new(Command::Auth, AUTH_RSAPUBLICKEY, 0, b"QAAA x\0".to_vec());
        assert!(matches!(
            hs.on_packet(&key, &mut tokens),
            Ok(Some(Step::PublicKey(_)))
        ));
        assert!(matches!(
            hs.on_packet(&key, &mut tokens),
            Ok(Some(Step::PublicKey(_)))
        ));
        assert_eq!(
            hs.on_packet(&key, &mut tokens),
            Err(HandshakeError::TooManyAttempts(3))
        );
    }

    /// Every message before online counts, ignored ones included; none once online.
    #[test]
    fn handshake_messages_are_bounded() {
        let mut tokens = counter();
        let mut hs = Handshake::new(config(true)).with_max_messages(5);
        let stray = Packet::new(Command::Okay, 1, 1, vec![]);
        for _ in 0..5 {
            assert_eq!(hs.on_packet(&stray, &mut tokens), Ok(None));
        }
        assert_eq!(
            hs.on_packet(&stray, &mut tokens),
            Err(HandshakeError::TooManyMessages(5))
        );
        // The default is generous enough for adb and small enough to matter.
        let mut hs = Handshake::new(config(true));
        for _ in 0..DEFAULT_MAX_MESSAGES {
            assert_eq!(hs.on_packet(&stray, &mut tokens), Ok(None));
        }
        assert!(hs.on_packet(&stray, &mut tokens).is_err());
        // Online: no count.
        let mut hs = Handshake::new(config(false)).with_max_messages(1);
        hs.on_packet(&host_cnxn(), &mut tokens).unwrap();
        for _ in 0..10 {
            assert_eq!(hs.on_packet(&stray, &mut tokens), Ok(None));
        }
    }

    #[test]
    fn bad_cnxn_and_bad_auth_are_refused() {
        let mut tokens = counter();
        let mut hs = Handshake::new(config(true));
        let old = Packet::new(Command::Cnxn, 0x0000_0001, MAX_PAYLOAD, vec![]);
        assert_eq!(
            hs.on_packet(&old, &mut tokens),
            Err(HandshakeError::Version(1))
        );
        let small = Packet::new(Command::Cnxn, VERSION, 100, vec![]);
        assert_eq!(
            hs.on_packet(&small, &mut tokens),
            Err(HandshakeError::MaxPayload(100))
        );
        hs.on_packet(&host_cnxn(), &mut tokens).unwrap();
        let token = Packet::new(Command::Auth, AUTH_TOKEN, 0, vec![0; 20]);
        assert_eq!(
            hs.on_packet(&token, &mut tokens),
            Err(HandshakeError::AuthType(AUTH_TOKEN))
        );
        let mut hs = Handshake::new(config(true));
        assert!(hs.on_verdict(true, &mut tokens).is_err());
    }

    #[test]
    fn version_and_payload_are_the_smaller_sides() {
        let mut hs = Handshake::new(config(false));
        let mut tokens = counter();
        let old = Packet::new(Command::Cnxn, VERSION_MIN, 4096, b"host::".to_vec());
        let Some(Step::Online { cnxn, negotiated }) = hs.on_packet(&old, &mut tokens).unwrap()
        else {
            panic!()
        };
        assert_eq!(negotiated.version, VERSION_MIN);
        assert_eq!(negotiated.max_payload, 4096);
        assert_eq!(cnxn.arg1, 4096);
        assert_eq!(hs.version(), VERSION_MIN);
    }
}
