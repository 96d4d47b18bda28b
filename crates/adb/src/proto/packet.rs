//! The transport's message (AOSP `adb/protocol.txt`): a 24-byte little-endian header (command,
//! arg0, arg1, payload length, payload checksum, magic = command ^ 0xffffffff) and its payload.
//! Owns the header's parser, which refuses a length over the limit before anyone reads the
//! payload, and the checksum rules of the two protocol versions.

use thiserror::Error;

/// The header's size on the wire.
pub const HEADER_LEN: usize = 24;

/// The first protocol version: every payload carries a byte-sum checksum.
pub const VERSION_MIN: u32 = 0x0100_0000;
/// The version from which both sides may send a zero checksum (adb 1.0.36 and later).
pub const VERSION_SKIP_CHECKSUM: u32 = 0x0100_0001;
/// The version this side speaks.
pub const VERSION: u32 = VERSION_SKIP_CHECKSUM;

/// What CNXN and AUTH may carry: they travel before the device has said how much it accepts,
/// and old hosts assumed 4096.
pub const MAX_PAYLOAD_V1: u32 = 4 * 1024;
/// The largest payload adbd 29 accepts (`MAX_PAYLOAD` in adb.h); hosts announce the same.
pub const MAX_PAYLOAD: u32 = 1024 * 1024;

/// A message's command word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Obsolete (protocol.txt: never valid on the wire); parsed so that it can be ignored.
    Sync,
    Cnxn,
    Auth,
    Open,
    Okay,
    Clse,
    Wrte,
    /// TLS upgrade of adb 30 and later; only a device that asks for it receives one.
    Stls,
}

impl Command {
    pub const fn word(self) -> u32 {
        match self {
            Command::Sync => 0x434e_5953,
            Command::Cnxn => 0x4e58_4e43,
            Command::Auth => 0x4854_5541,
            Command::Open => 0x4e45_504f,
            Command::Okay => 0x5941_4b4f,
            Command::Clse => 0x4553_4c43,
            Command::Wrte => 0x4554_5257,
            Command::Stls => 0x534c_5453,
        }
    }

    pub fn from_word(word: u32) -> Option<Command> {
        [
            Command::Sync,
            Command::Cnxn,
            Command::Auth,
            Command::Open,
            Command::Okay,
            Command::Clse,
            Command::Wrte,
            Command::Stls,
        ]
        .into_iter()
        .find(|c| c.word() == word)
    }
}

/// Why a header or payload was refused. Each closes the connection: the protocol has shared
/// state, and a stream of messages out of step cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("bad magic {magic:#010x} for command word {word:#010x}")]
    BadMagic { word: u32, magic: u32 },
    #[error("unknown command word {0:#010x}")]
    UnknownCommand(u32),
    #[error("payload of {len} bytes over the limit of {max}")]
    TooLarge { len: u32, max: u32 },
    #[error("payload checksum {actual:#x} differs from the header's {expected:#x}")]
    Checksum { expected: u32, actual: u32 },
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub command: Command,
    pub arg0: u32,
    pub arg1: u32,
    pub data_length: u32,
    pub data_check: u32,
}

fn word(bytes: &[u8; HEADER_LEN], i: usize) -> u32 {
    u32::from_le_bytes([
        bytes[i * 4],
        bytes[i * 4 + 1],
        bytes[i * 4 + 2],
        bytes[i * 4 + 3],
    ])
}

impl Header {
    /// Parses a header, refusing a payload longer than `max_payload` so that the caller never
    /// allocates or reads what a hostile length asks for. The magic is checked first: garbage
    /// is far more likely than a real command with a bad length.
    pub fn parse(bytes: &[u8; HEADER_LEN], max_payload: u32) -> Result<Header, PacketError> {
        let (command, magic) = (word(bytes, 0), word(bytes, 5));
        if magic != command ^ 0xffff_ffff {
            return Err(PacketError::BadMagic {
                word: command,
                magic,
            });
        }
        let command = Command::from_word(command).ok_or(PacketError::UnknownCommand(command))?;
        let data_length = word(bytes, 3);
        if data_length > max_payload {
            return Err(PacketError::TooLarge {
                len: data_length,
                max: max_payload,
            });
        }
        Ok(Header {
            command,
            arg0: word(bytes, 1),
            arg1: word(bytes, 2),
            data_length,
            data_check: word(bytes, 4),
        })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let command = self.command.word();
        for (i, w) in [
            command,
            self.arg0,
            self.arg1,
            self.data_length,
            self.data_check,
            command ^ 0xffff_ffff,
        ]
        .into_iter()
        .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// adb's payload "crc32", which is the sum of the bytes.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |s, b| s.wrapping_add(u32::from(*b)))
}

/// Whether messages under `version` carry (and must match) a checksum.
pub fn checksum_required(version: u32) -> bool {
    version < VERSION_SKIP_CHECKSUM
}

/// The version whose checksum rule applies to a received message: a CNXN states its sender's
/// version itself (the host checksums it, since it has not yet heard ours); every later
/// message is under the negotiated one (`None` before a CNXN: such a message is ignored
/// whatever it carries, protocol.txt, so its checksum is not checked either).
pub fn version_for(header: &Header, negotiated: Option<u32>) -> u32 {
    if header.command == Command::Cnxn {
        header.arg0.min(VERSION)
    } else {
        negotiated.unwrap_or(VERSION)
    }
}

/// Checks a received payload against its header under `version`. adbd 29 checks nothing; we
/// check what the old protocol promises, and nothing under the new one, where the sender may
/// leave the field zero.
pub fn verify_checksum(header: &Header, payload: &[u8], version: u32) -> Result<(), PacketError> {
    if !checksum_required(version) {
        return Ok(());
    }
    let actual = checksum(payload);
    if actual != header.data_check {
        return Err(PacketError::Checksum {
            expected: header.data_check,
            actual,
        });
    }
    Ok(())
}

/// A whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub command: Command,
    pub arg0: u32,
    pub arg1: u32,
    pub payload: Vec<u8>,
}

impl Packet {
    pub fn new(command: Command, arg0: u32, arg1: u32, payload: Vec<u8>) -> Packet {
        Packet {
            command,
            arg0,
            arg1,
            payload,
        }
    }

    /// The header this message is sent with under `version`.
    pub fn header(&self, version: u32) -> Header {
        Header {
            command: self.command,
            arg0: self.arg0,
            arg1: self.arg1,
            data_length: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
            data_check: if checksum_required(version) {
                checksum(&self.payload)
            } else {
                0
            },
        }
    }

    /// Header and payload in one buffer.
    pub fn encode(&self, version: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.header(version).encode());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Decodes the first message of `buf`: `Ok(None)` while it is incomplete, else the message and
/// the bytes it used. The same checks as the session's reader, on a buffer (tests, fuzzing).
pub fn decode(
    buf: &[u8],
    max_payload: u32,
    negotiated: Option<u32>,
) -> Result<Option<(Packet, usize)>, PacketError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(head, max_payload)?;
    let end = HEADER_LEN + header.data_length as usize;
    let Some(payload) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    verify_checksum(&header, payload, version_for(&header, negotiated))?;
    Ok(Some((
        Packet::new(header.command, header.arg0, header.arg1, payload.to_vec()),
        end,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(words: [u32; 6]) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (i, w) in words.into_iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn command_words_spell_their_names() {
        for (c, name) in [
            (Command::Sync, b"SYNC"),
            (Command::Cnxn, b"CNXN"),
            (Command::Auth, b"AUTH"),
            (Command::Open, b"OPEN"),
            (Command::Okay, b"OKAY"),
            (Command::Clse, b"CLSE"),
            (Command::Wrte, b"WRTE"),
            (Command::Stls, b"STLS"),
        ] {
            assert_eq!(c.word().to_le_bytes(), *name);
            assert_eq!(Command::from_word(c.word()), Some(c));
        }
        assert_eq!(Command::from_word(0), None);
    }

    #[test]
    fn header_round_trips() {
        let p = Packet::new(Command::Wrte, 7, 9, b"hello".to_vec());
        for version in [VERSION_MIN, VERSION] {
            let bytes = p.encode(version);
            let (back, used) = decode(&bytes, MAX_PAYLOAD, Some(version)).unwrap().unwrap();
            assert_eq!(back, p);
            assert_eq!(used, bytes.len());
        }
        // The old version checksums; the new one sends zero.
        assert_eq!(p.header(VERSION_MIN).data_check, checksum(b"hello"));
        assert_eq!(p.header(VERSION).data_check, 0);
        assert_eq!(checksum(b"hello"), 532);
    }

    #[test]
    fn bad_magic_is_refused_before_anything_else() {
        let cmd = Command::Open.word();
        let h = raw([cmd, 1, 0, u32::MAX, 0, cmd]);
        assert_eq!(
            Header::parse(&h, MAX_PAYLOAD),
            Err(PacketError::BadMagic {
                word: cmd,
                magic: cmd
            })
        );
        let garbage = *b"GET / HTTP/1.1\r\nHost: x\r\n";
        let head: &[u8; HEADER_LEN] = garbage[..HEADER_LEN].try_into().unwrap();
        assert!(matches!(
            Header::parse(head, MAX_PAYLOAD),
            Err(PacketError::BadMagic { .. })
        ));
    }

    #[test]
    fn unknown_command_with_good_magic_is_refused() {
        let h = raw([0x1234_5678, 0, 0, 0, 0, 0x1234_5678 ^ 0xffff_ffff]);
        assert_eq!(
            Header::parse(&h, MAX_PAYLOAD),
            Err(PacketError::UnknownCommand(0x1234_5678))
        );
    }

    #[test]
    fn length_over_the_limit_is_refused_from_the_header_alone() {
        let cmd = Command::Wrte.word();
        let h = raw([cmd, 1, 1, 0xffff_fff0, 0, !cmd]);
        assert_eq!(
            Header::parse(&h, MAX_PAYLOAD),
            Err(PacketError::TooLarge {
                len: 0xffff_fff0,
                max: MAX_PAYLOAD
            })
        );
        // decode() refuses with only the 24 header bytes in hand.
        assert!(matches!(
            decode(&h, MAX_PAYLOAD, Some(VERSION)),
            Err(PacketError::TooLarge { .. })
        ));
        let at_limit = raw([cmd, 1, 1, 4096, 0, !cmd]);
        assert_eq!(Header::parse(&at_limit, 4096).unwrap().data_length, 4096);
        assert!(Header::parse(&at_limit, 4095).is_err());
    }

    #[test]
    fn checksum_rules_follow_the_version() {
        let mut bytes = Packet::new(Command::Wrte, 1, 2, b"abc".to_vec()).encode(VERSION_MIN);
        bytes[16] ^= 1; // corrupt the checksum
        assert!(matches!(
            decode(&bytes, MAX_PAYLOAD, Some(VERSION_MIN)),
            Err(PacketError::Checksum { .. })
        ));
        // Under the new version the field is not looked at, nor before a CNXN.
        assert!(
            decode(&bytes, MAX_PAYLOAD, Some(VERSION))
                .unwrap()
                .is_some()
        );
        assert!(decode(&bytes, MAX_PAYLOAD, None).unwrap().is_some());

        // A CNXN is judged by the version it states, not the one in effect before it.
        let cnxn_new = Packet::new(Command::Cnxn, VERSION, MAX_PAYLOAD, b"host::".to_vec());
        let new_bytes = cnxn_new.encode(VERSION); // zero checksum
        assert!(decode(&new_bytes, MAX_PAYLOAD_V1, None).is_ok());
        let cnxn_old = Packet::new(Command::Cnxn, VERSION_MIN, 4096, b"host::".to_vec());
        let mut old_bytes = cnxn_old.encode(VERSION);
        assert!(decode(&old_bytes, MAX_PAYLOAD_V1, None).is_err());
        old_bytes = cnxn_old.encode(VERSION_MIN);
        assert!(decode(&old_bytes, MAX_PAYLOAD_V1, None).is_ok());
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        let bytes = Packet::new(Command::Wrte, 1, 2, vec![7; 100]).encode(VERSION);
        for cut in [0, 1, 23, 24, 50, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut], MAX_PAYLOAD, Some(VERSION)), Ok(None));
        }
    }
}
