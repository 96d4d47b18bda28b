//! Shell protocol v2 framing (AOSP `adb/shell_protocol.h`): each packet is an id byte, a
//! little-endian u32 length and that many bytes. Host to device: stdin, close-stdin and
//! window-size; device to host: stdout, stderr and the one-byte exit code.

/// Id byte and length.
pub const SHELL_HEADER_LEN: usize = 5;

/// A packet's id byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellId {
    Stdin,
    Stdout,
    Stderr,
    /// One byte: the exit code.
    Exit,
    /// Close the command's stdin (the host's stdin reached end of file).
    CloseStdin,
    /// `ROWSxCOLS,XPIXELSxYPIXELS` in ASCII, NUL-terminated.
    WindowSizeChange,
    /// adbd ignores ids it does not know; so do we.
    Unknown(u8),
}

impl ShellId {
    pub fn from_byte(b: u8) -> ShellId {
        match b {
            0 => ShellId::Stdin,
            1 => ShellId::Stdout,
            2 => ShellId::Stderr,
            3 => ShellId::Exit,
            4 => ShellId::CloseStdin,
            5 => ShellId::WindowSizeChange,
            other => ShellId::Unknown(other),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            ShellId::Stdin => 0,
            ShellId::Stdout => 1,
            ShellId::Stderr => 2,
            ShellId::Exit => 3,
            ShellId::CloseStdin => 4,
            ShellId::WindowSizeChange => 5,
            ShellId::Unknown(b) => b,
        }
    }
}

/// A packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellHeader {
    pub id: ShellId,
    pub len: u32,
}

impl ShellHeader {
    pub fn parse(bytes: &[u8; SHELL_HEADER_LEN]) -> ShellHeader {
        ShellHeader {
            id: ShellId::from_byte(bytes[0]),
            len: u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        }
    }

    pub fn encode(&self) -> [u8; SHELL_HEADER_LEN] {
        let l = self.len.to_le_bytes();
        [self.id.byte(), l[0], l[1], l[2], l[3]]
    }
}

/// A whole packet in one buffer, so that it leaves in one WRTE (two writes would cost a round
/// trip each under adb's one-WRTE-in-flight flow control).
pub fn encode_packet(id: ShellId, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SHELL_HEADER_LEN + data.len());
    let len = u32::try_from(data.len()).expect("a shell packet fits in u32");
    out.extend_from_slice(&ShellHeader { id, len }.encode());
    out.extend_from_slice(data);
    out
}

/// The terminal size a window-size packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
    pub x_pixels: u16,
    pub y_pixels: u16,
}

impl WindowSize {
    /// Parses `ROWSxCOLS,XxY` (what adb sends; trailing NULs ignored). adbd ignores a packet
    /// that does not parse, so this returns `None` for it.
    pub fn parse(data: &[u8]) -> Option<WindowSize> {
        let text = std::str::from_utf8(data).ok()?.trim_end_matches('\0');
        let (size, pixels) = text.split_once(',')?;
        let pair = |s: &str| -> Option<(u16, u16)> {
            let (a, b) = s.split_once('x')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        };
        let (rows, cols) = pair(size)?;
        let (x_pixels, y_pixels) = pair(pixels)?;
        Some(WindowSize {
            rows,
            cols,
            x_pixels,
            y_pixels,
        })
    }
}

/// Splits a byte buffer into whole packets: each `(id, data)` and the bytes used, `None` once
/// what is left is an incomplete packet. For tests and fuzzing; the shell adapter streams a
/// packet's data without holding it whole.
pub fn decode(buf: &[u8]) -> Option<((ShellId, &[u8]), usize)> {
    let head = buf.first_chunk::<SHELL_HEADER_LEN>()?;
    let h = ShellHeader::parse(head);
    let end = SHELL_HEADER_LEN.checked_add(h.len as usize)?;
    let data = buf.get(SHELL_HEADER_LEN..end)?;
    Some(((h.id, data), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip() {
        let mut buf = encode_packet(ShellId::Stdout, b"hello\n");
        buf.extend(encode_packet(ShellId::Stderr, b""));
        buf.extend(encode_packet(ShellId::Exit, &[3]));
        assert_eq!(&buf[..5], &[1, 6, 0, 0, 0]);
        let mut rest = &buf[..];
        let mut seen = vec![];
        while let Some(((id, data), used)) = decode(rest) {
            seen.push((id, data.to_vec()));
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            seen,
            vec![
                (ShellId::Stdout, b"hello\n".to_vec()),
                (ShellId::Stderr, vec![]),
                (ShellId::Exit, vec![3]),
            ]
        );
        assert_eq!(decode(&buf[..4]), None);
        assert_eq!(decode(&buf[..7]), None);
    }

    #[test]
    fn ids_map_both_ways() {
        for b in 0..=255u8 {
            assert_eq!(ShellId::from_byte(b).byte(), b);
        }
        assert_eq!(ShellId::from_byte(4), ShellId::CloseStdin);
        assert_eq!(ShellId::from_byte(9), ShellId::Unknown(9));
    }

    #[test]
    fn window_size_as_adb_sends_it() {
        assert_eq!(
            WindowSize::parse(b"24x80,0x0\0"),
            Some(WindowSize {
                rows: 24,
                cols: 80,
                x_pixels: 0,
                y_pixels: 0
            })
        );
        assert_eq!(WindowSize::parse(b"24x80"), None);
        assert_eq!(WindowSize::parse(b"ax80,0x0"), None);
        assert_eq!(WindowSize::parse(&[0xff]), None);
    }
}
