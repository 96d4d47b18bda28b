//! Server-sent events, as the watch stream sends them: bytes in whatever chunks the connection
//! delivers, out as whole events. Lines end with LF, CRLF or CR; an empty line ends an event;
//! `id:` and `data:` fields are kept (several `data:` lines join with LF), comments (`:`) and
//! other fields are skipped, and an event without data (a keep-alive) is none.

/// One complete event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its `id:` field, if it had one (the stream's resume point).
    pub id: Option<String>,
    pub data: String,
}

/// The part of a stream read so far.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet ended (kept as bytes: a chunk may end inside a character).
    pending: Vec<u8>,
    id: Option<String>,
    data: Vec<String>,
}

impl Parser {
    /// Adds bytes read; returns the events they completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Frame> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(at) = self.pending[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + at;
            let next = match (self.pending[end], self.pending.get(end + 1)) {
                (b'\r', Some(b'\n')) => end + 2,
                // A CR as the last byte read may be the first half of a CRLF: wait for more.
                (b'\r', None) => break,
                _ => end + 1,
            };
            let line = String::from_utf8_lossy(&self.pending[start..end]).into_owned();
            if let Some(frame) = self.line(&line) {
                out.push(frame);
            }
            start = next;
        }
        self.pending.drain(..start);
        out
    }

    fn line(&mut self, line: &str) -> Option<Frame> {
        if line.is_empty() {
            let id = self.id.take();
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(Frame { id, data });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: &str, data: &str) -> Frame {
        Frame {
            id: Some(id.into()),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_split_whatever_the_chunks() {
        let mut p = Parser::default();
        assert!(
            p.feed(b": keep-alive\n\nid: 0-1\nevent: task\nda")
                .is_empty()
        );
        let got = p.feed(b"ta: {\"a\":1}\n\nid:0-2\r\ndata:{}\r\n\r\n");
        assert_eq!(got, [frame("0-1", "{\"a\":1}"), frame("0-2", "{}")]);
        assert!(p.feed(b":\n\n").is_empty());
    }

    #[test]
    fn a_chunk_may_end_inside_a_character_or_a_crlf() {
        let mut p = Parser::default();
        let bytes = "id: 7\r\ndata: \"中\"\r\n\r\n".as_bytes();
        let mut got = Vec::new();
        for b in bytes {
            got.extend(p.feed(std::slice::from_ref(b)));
        }
        assert_eq!(got, [frame("7", "\"中\"")]);
    }

    #[test]
    fn data_lines_join_and_ids_belong_to_their_event() {
        let mut p = Parser::default();
        let got = p.feed(b"data: a\ndata: b\n\nid: 1\n\ndata: c\r\r\n");
        assert_eq!(
            got,
            [
                Frame {
                    id: None,
                    data: "a\nb".into()
                },
                Frame {
                    id: None,
                    data: "c".into()
                }
            ]
        );
    }
}
