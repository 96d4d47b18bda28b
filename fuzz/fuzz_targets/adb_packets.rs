//! Fuzz target `adb_packets`: what an ADB gateway reads from a client before and just after it
//! has authenticated. The first input byte configures the device (bit 0: authentication
//! required; bits 1-3: n, for at most 64 >> n messages before online; bits 4-7: attempts
//! allowed); the rest is the byte stream a host sends, cut into messages by `packet::decode`
//! under the limits the handshake state machine sets (`Handshake::max_incoming`, 4096 bytes
//! until online) and fed to it, as the session does. A
//! signature is accepted only when it is the token it answers, reversed (so the fuzzer can
//! find an accepted one). Once online, OPEN payloads go to `ServiceName::parse` and WRTE
//! payloads to the shell v2 and sync frame parsers. Checks besides "never panics": a decoded
//! message re-encodes to the bytes it came from; the machine is online with authentication on
//! only right after an accepted signature (never on an offered public key); before that it
//! sends only AUTH TOKENs of 20 bytes; the CNXN it sends fits 4096 bytes and states a
//! negotiated payload within our limit and at least 4096; no more messages are taken before
//! online than the cap and no more keys offered than attempts allowed.

#![no_main]

use cloudphone_adb::proto::banner::{DeviceBanner, parse_banner};
use cloudphone_adb::proto::handshake::{
    AUTH_TOKEN, DEFAULT_MAX_MESSAGES, Handshake, HandshakeConfig, Step, TOKEN_SIZE,
};
use cloudphone_adb::proto::packet::{
    Command, HEADER_LEN, MAX_PAYLOAD_V1, VERSION, VERSION_MIN, decode,
};
use cloudphone_adb::proto::service::ServiceName;
use cloudphone_adb::proto::shell::{self, WindowSize};
use cloudphone_adb::proto::sync::{Frame, REQUEST_LEN, parse_send_spec};
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD: u32 = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let auth_required = flags & 1 != 0;
    let banner = DeviceBanner::new("fuzz", "Fuzz", "fuzz").encode().unwrap();
    let max_attempts = u32::from(flags >> 4) + 1;
    // The default (64) unless the bits ask for fewer.
    let max_messages = (DEFAULT_MAX_MESSAGES >> ((flags >> 1) & 7)).max(1);
    let mut hs = Handshake::new(HandshakeConfig {
        banner,
        max_payload: MAX_PAYLOAD,
        auth_required,
        max_auth_attempts: max_attempts,
    })
    .with_max_messages(max_messages);
    // Messages before online, and keys offered.
    let (mut before_online, mut offered) = (0u32, 0u32);
    let mut n = 0u8;
    let mut tokens = move || {
        n = n.wrapping_add(1);
        let mut t = [n; TOKEN_SIZE];
        t[0] = 0x5a;
        t
    };

    loop {
        let limit = hs.max_incoming();
        let (p, used) = match decode(rest, limit, hs.negotiated_version()) {
            Ok(Some(x)) => x,
            // A refused header or payload closes the connection; an incomplete one waits.
            Ok(None) | Err(_) => return,
        };
        assert!(used >= HEADER_LEN && used <= rest.len());
        assert!(p.payload.len() <= limit as usize);
        // One spelling: what decoded re-encodes to its own bytes, up to the checksum field,
        // which is rewritten under whichever version applies.
        let again = p.encode(VERSION);
        assert_eq!(again[..16], rest[..16]);
        assert_eq!(again[20..], rest[20..used]);
        rest = &rest[used..];

        if hs.is_online() {
            after_handshake(&p.command, &p.payload);
        }
        if p.command == Command::Cnxn {
            let _ = parse_banner(&p.payload);
        }
        let was_online = hs.is_online();
        if !was_online {
            before_online += 1;
        }
        let mut accepted = false;
        let step = match hs.on_packet(&p, &mut tokens) {
            Ok(Some(Step::Verify { token, signature })) => {
                let mut expected = token.to_vec();
                expected.reverse();
                accepted = signature == expected;
                match hs.on_verdict(accepted, &mut tokens) {
                    Ok(step) => {
                        assert_eq!(accepted, matches!(step, Step::Online { .. }));
                        Some(step)
                    }
                    Err(_) => {
                        assert!(!accepted);
                        return;
                    }
                }
            }
            Ok(Some(Step::PublicKey(_))) => {
                assert!(!hs.is_online(), "a public key is never enough");
                offered += 1;
                assert!(offered < max_attempts, "each offered key is an attempt");
                None
            }
            Ok(step) => step,
            Err(_) => return,
        };
        assert!(
            before_online <= max_messages,
            "{before_online} messages before online"
        );
        match step {
            Some(Step::Send(out)) => {
                assert!(auth_required && !hs.is_online());
                assert_eq!((out.command, out.arg0), (Command::Auth, AUTH_TOKEN));
                assert_eq!(out.payload.len(), TOKEN_SIZE);
            }
            Some(Step::Online { cnxn, negotiated }) => {
                assert!(!was_online && hs.is_online());
                assert!(cnxn.payload.len() <= MAX_PAYLOAD_V1 as usize);
                assert_eq!((cnxn.command, cnxn.arg0), (Command::Cnxn, VERSION));
                assert!(negotiated.max_payload >= MAX_PAYLOAD_V1);
                assert!(negotiated.max_payload <= MAX_PAYLOAD);
                assert!((VERSION_MIN..=VERSION).contains(&negotiated.version));
                if auth_required {
                    assert!(accepted, "online with authentication only by a signature");
                } else {
                    assert_eq!(p.command, Command::Cnxn);
                }
            }
            _ => assert_eq!(hs.is_online(), was_online),
        }
    }
});

/// The parsers a stream's first bytes reach once the host is in.
fn after_handshake(command: &Command, payload: &[u8]) {
    match command {
        Command::Open => {
            if let ServiceName::Shell(req) = ServiceName::parse(payload) {
                assert!(!(req.exec && req.pty));
            }
        }
        Command::Wrte => {
            let mut rest = payload;
            while let Some(((id, data), used)) = shell::decode(rest) {
                if id == shell::ShellId::WindowSizeChange {
                    let _ = WindowSize::parse(data);
                }
                rest = &rest[used..];
            }
            if let Some(head) = payload.first_chunk::<REQUEST_LEN>() {
                let frame = Frame::parse(head);
                assert_eq!(&frame.encode(), head);
                let _ = parse_send_spec(&String::from_utf8_lossy(&payload[REQUEST_LEN..]));
            }
        }
        _ => {}
    }
}
