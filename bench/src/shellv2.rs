//! Shell protocol v2 as a host speaks it (AOSP `adb/shell_protocol.h`): every message is a
//! one-byte id, a little-endian u32 length and the data. The shells of the ADB benchmark open
//! `shell,v2,raw:` (what `adb shell` sends with stdin piped, against a device with shell_v2), so
//! they write their lines as stdin messages and read stdout, stderr and the exit code apart.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const CLOSE_STDIN: u8 = 4;

/// A message's bytes.
pub fn message(id: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    out.push(id);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The largest message accepted: a device sends at most its max payload (1 MiB) at once.
const MAX_MESSAGE: usize = 1 << 20;

/// Reads one message; `None` at end of stream between messages.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    let n = r.read(&mut head).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut head[n..]).await?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a shell message of {len} bytes"),
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data).await?;
    Ok(Some((head[0], data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_id_length_data() {
        assert_eq!(message(STDIN, b"echo x\n"), b"\x00\x07\x00\x00\x00echo x\n");
        assert_eq!(message(CLOSE_STDIN, b""), b"\x04\x00\x00\x00\x00");
    }

    #[tokio::test]
    async fn reads_messages_split_anywhere() {
        let mut wire = message(STDOUT, b"hello\n");
        wire.extend(message(STDERR, b""));
        wire.extend(message(EXIT, &[3]));
        // One byte at a time: the header may arrive in pieces.
        let (mut w, mut r) = tokio::io::duplex(1);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for b in wire {
                w.write_all(&[b]).await.unwrap();
            }
        });
        assert_eq!(
            read_message(&mut r).await.unwrap(),
            Some((STDOUT, b"hello\n".to_vec()))
        );
        assert_eq!(read_message(&mut r).await.unwrap(), Some((STDERR, vec![])));
        assert_eq!(read_message(&mut r).await.unwrap(), Some((EXIT, vec![3])));
        assert_eq!(read_message(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refuses_a_huge_length() {
        let wire = [1u8, 0xff, 0xff, 0xff, 0xff];
        let mut r = &wire[..];
        assert!(read_message(&mut r).await.is_err());
    }
}
