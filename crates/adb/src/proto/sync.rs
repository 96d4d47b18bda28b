//! The file sync protocol's frames (AOSP `adb/SYNC.TXT`, `file_sync_protocol.h`): 8-byte
//! requests (id, length) followed by a path, STAT/LIST/SEND/RECV/QUIT and their v2 forms
//! STA2/LST2/LIS2, the DATA/DONE transfer frames, OKAY/FAIL statuses, and the stat and
//! directory-entry records, all little-endian.

/// `MKID('S','T','A','T')`: the id of a request or response, as four ASCII bytes.
const fn id(name: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*name)
}

/// lstat, v1 response (mode, size, mtime; all zero on failure).
pub const ID_LSTAT_V1: u32 = id(b"STAT");
/// stat (follows links), v2 response.
pub const ID_STAT_V2: u32 = id(b"STA2");
/// lstat, v2 response.
pub const ID_LSTAT_V2: u32 = id(b"LST2");
pub const ID_LIST_V1: u32 = id(b"LIST");
pub const ID_LIST_V2: u32 = id(b"LIS2");
pub const ID_DENT_V1: u32 = id(b"DENT");
pub const ID_DENT_V2: u32 = id(b"DNT2");
pub const ID_SEND: u32 = id(b"SEND");
pub const ID_RECV: u32 = id(b"RECV");
pub const ID_DONE: u32 = id(b"DONE");
pub const ID_DATA: u32 = id(b"DATA");
pub const ID_OKAY: u32 = id(b"OKAY");
pub const ID_FAIL: u32 = id(b"FAIL");
pub const ID_QUIT: u32 = id(b"QUIT");

/// The largest DATA chunk either side sends.
pub const SYNC_DATA_MAX: u32 = 64 * 1024;
/// The longest path a request may carry (adbd refuses longer ones).
pub const MAX_PATH_LEN: u32 = 1024;

/// A request or frame header.
pub const REQUEST_LEN: usize = 8;
pub const STAT_V1_LEN: usize = 16;
pub const STAT_V2_LEN: usize = 72;
pub const DENT_V1_LEN: usize = 20;
pub const DENT_V2_LEN: usize = 76;

/// `st_mode` file type bits.
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFLNK: u32 = 0o120_000;

/// Linux errno values, which are what travels in STA2/DNT2 (adb's `errno_to_wire`).
pub mod errno {
    pub const EPERM: u32 = 1;
    pub const ENOENT: u32 = 2;
    pub const EIO: u32 = 5;
    pub const EACCES: u32 = 13;
    pub const EEXIST: u32 = 17;
    pub const ENOTDIR: u32 = 20;
    pub const EISDIR: u32 = 21;
    pub const EINVAL: u32 = 22;
    pub const EFBIG: u32 = 27;
    pub const ENOSPC: u32 = 28;
    pub const EROFS: u32 = 30;
    pub const ENAMETOOLONG: u32 = 36;
    pub const ENOTSUP: u32 = 95;
}

/// An 8-byte frame header: a request (id, path length), DATA (id, size), DONE (id, mtime),
/// or a status (id, message length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub id: u32,
    pub arg: u32,
}

impl Frame {
    pub fn parse(bytes: &[u8; REQUEST_LEN]) -> Frame {
        Frame {
            id: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            arg: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        out[..4].copy_from_slice(&self.id.to_le_bytes());
        out[4..].copy_from_slice(&self.arg.to_le_bytes());
        out
    }

    /// The id as text, for messages.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.id.to_le_bytes()).into_owned()
    }
}

/// What a file is, as far as sync reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    /// Type and permission bits (`S_IFREG | 0o644`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
}

impl FileStat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

/// A STAT (v1) response: zero for a file that cannot be stat'ed, which is all v1 can say.
/// Sizes and times above 32 bits are truncated, as adbd's are.
pub fn stat_v1(stat: Option<&FileStat>) -> [u8; STAT_V1_LEN] {
    let s = stat.copied().unwrap_or_default();
    let mut out = [0u8; STAT_V1_LEN];
    out[0..4].copy_from_slice(&ID_LSTAT_V1.to_le_bytes());
    out[4..8].copy_from_slice(&s.mode.to_le_bytes());
    out[8..12].copy_from_slice(&(s.size as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(s.mtime as u32).to_le_bytes());
    out
}

fn put_v2(out: &mut Vec<u8>, error: u32, s: &FileStat) {
    out.extend_from_slice(&error.to_le_bytes());
    out.extend_from_slice(&s.dev.to_le_bytes());
    out.extend_from_slice(&s.ino.to_le_bytes());
    out.extend_from_slice(&s.mode.to_le_bytes());
    out.extend_from_slice(&s.nlink.to_le_bytes());
    out.extend_from_slice(&s.uid.to_le_bytes());
    out.extend_from_slice(&s.gid.to_le_bytes());
    out.extend_from_slice(&s.size.to_le_bytes());
    out.extend_from_slice(&s.atime.to_le_bytes());
    out.extend_from_slice(&s.mtime.to_le_bytes());
    out.extend_from_slice(&s.ctime.to_le_bytes());
}

/// A STA2 or LST2 response (`id` is the request's): the stat, or the errno of its failure.
pub fn stat_v2(id: u32, stat: Result<&FileStat, u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAT_V2_LEN);
    out.extend_from_slice(&id.to_le_bytes());
    match stat {
        Ok(s) => put_v2(&mut out, 0, s),
        Err(e) => put_v2(&mut out, e, &FileStat::default()),
    }
    out
}

/// A DENT (LIST v1) entry.
pub fn dent_v1(stat: &FileStat, name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DENT_V1_LEN + name.len());
    out.extend_from_slice(&ID_DENT_V1.to_le_bytes());
    out.extend_from_slice(&stat.mode.to_le_bytes());
    out.extend_from_slice(&(stat.size as u32).to_le_bytes());
    out.extend_from_slice(&(stat.mtime as u32).to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name);
    out
}

/// A DNT2 (LIS2) entry.
pub fn dent_v2(stat: &FileStat, name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DENT_V2_LEN + name.len());
    out.extend_from_slice(&ID_DENT_V2.to_le_bytes());
    put_v2(&mut out, 0, stat);
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name);
    out
}

/// The end of a listing: a whole entry-sized record with id DONE, because the client reads
/// entry-sized records and only then looks at the id.
pub fn list_done(v2: bool) -> Vec<u8> {
    let mut out = vec![0u8; if v2 { DENT_V2_LEN } else { DENT_V1_LEN }];
    out[..4].copy_from_slice(&ID_DONE.to_le_bytes());
    out
}

/// A FAIL status and its message.
pub fn fail(message: &str) -> Vec<u8> {
    let msg = message.as_bytes();
    let mut out = Vec::with_capacity(REQUEST_LEN + msg.len());
    out.extend_from_slice(
        &Frame {
            id: ID_FAIL,
            arg: msg.len() as u32,
        }
        .encode(),
    );
    out.extend_from_slice(msg);
    out
}

/// Splits SEND's `path,mode` at the last comma. The mode is parsed as C's `strtoul(s, 0)`
/// (decimal, `0x` hex or `0` octal), which is what adbd does; the client sends decimal.
pub fn parse_send_spec(spec: &str) -> Option<(&str, u32)> {
    let (path, mode) = spec.rsplit_once(',')?;
    let mode = mode.trim();
    let parsed = if let Some(hex) = mode.strip_prefix("0x").or_else(|| mode.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if mode.len() > 1 && mode.starts_with('0') {
        u32::from_str_radix(&mode[1..], 8).ok()?
    } else {
        mode.parse().ok()?
    };
    Some((path, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_names() {
        assert_eq!(&ID_SEND.to_le_bytes(), b"SEND");
        assert_eq!(&ID_DENT_V2.to_le_bytes(), b"DNT2");
        assert_eq!(
            Frame {
                id: ID_DATA,
                arg: 65536
            }
            .encode(),
            *b"DATA\0\0\x01\0"
        );
        let f = Frame::parse(b"RECV\x05\0\0\0");
        assert_eq!((f.id, f.arg, f.name()), (ID_RECV, 5, "RECV".to_string()));
    }

    #[test]
    fn record_sizes_match_the_packed_structs() {
        let s = FileStat {
            mode: S_IFREG | 0o644,
            size: 5,
            mtime: 7,
            ..FileStat::default()
        };
        assert_eq!(stat_v1(Some(&s)).len(), STAT_V1_LEN);
        assert_eq!(stat_v2(ID_STAT_V2, Ok(&s)).len(), STAT_V2_LEN);
        assert_eq!(dent_v1(&s, b"ab").len(), DENT_V1_LEN + 2);
        assert_eq!(dent_v2(&s, b"ab").len(), DENT_V2_LEN + 2);
        assert_eq!(list_done(true).len(), DENT_V2_LEN);
        assert_eq!(list_done(false).len(), DENT_V1_LEN);
    }

    #[test]
    fn stat_v2_fields_sit_where_the_client_reads_them() {
        let s = FileStat {
            dev: 1,
            ino: 2,
            mode: S_IFDIR | 0o755,
            nlink: 3,
            uid: 4,
            gid: 5,
            size: 1 << 40,
            atime: 6,
            mtime: 7,
            ctime: 8,
        };
        let b = stat_v2(ID_LSTAT_V2, Ok(&s));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        assert_eq!(&b[0..4], b"LST2");
        assert_eq!(u32_at(4), 0);
        assert_eq!((u64_at(8), u64_at(16)), (1, 2));
        assert_eq!(u32_at(24), S_IFDIR | 0o755);
        assert_eq!((u32_at(28), u32_at(32), u32_at(36)), (3, 4, 5));
        assert_eq!(u64_at(40), 1 << 40);
        assert_eq!((u64_at(48), u64_at(56), u64_at(64)), (6, 7, 8));
        let e = stat_v2(ID_STAT_V2, Err(errno::ENOENT));
        assert_eq!(u32::from_le_bytes(e[4..8].try_into().unwrap()), 2);
        assert!(e[8..].iter().all(|b| *b == 0));
    }

    #[test]
    fn send_spec_is_split_at_the_last_comma() {
        assert_eq!(
            parse_send_spec("/sdcard/a,b.txt,33188"),
            Some(("/sdcard/a,b.txt", 33188))
        );
        assert_eq!(parse_send_spec("/x,0755"), Some(("/x", 0o755)));
        assert_eq!(parse_send_spec("/x,0x1ff"), Some(("/x", 0o777)));
        assert_eq!(parse_send_spec("/x,0"), Some(("/x", 0)));
        assert_eq!(parse_send_spec("/x"), None);
        assert_eq!(parse_send_spec("/x,abc"), None);
        assert_eq!(parse_send_spec("/x,099"), None);
    }

    #[test]
    fn fail_carries_its_message() {
        assert_eq!(fail("no"), b"FAIL\x02\0\0\0no");
    }
}
