//! The farm benchmark's counting proxy: a unix socket in front of a Docker engine's socket
//! that forwards bytes both ways untouched and counts the HTTP requests the server sends, by
//! kind (`GET /_ping`, `GET /containers/json`, `POST /containers/{id}/start`...). Only the
//! request direction is parsed: each request head is read with `httparse`, then its body is
//! skipped by its framing (Content-Length, or chunked), so keep-alive connections with many
//! requests count each one; a response never needs reading, so long-lived answers such as
//! `/events` cost nothing. A request that upgrades the connection (attach, exec with a hijack)
//! ends the counting on that connection: what follows is a raw stream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// Requests seen, by kind; shared by the proxy's connections.
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<BTreeMap<String, u64>>>);

impl Counts {
    fn add(&self, kind: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What was counted between two snapshots, by kind.
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, &n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A running proxy; stopped (its socket removed) when dropped.
pub struct Proxy {
    pub socket: PathBuf,
    pub counts: Counts,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Proxy {
    /// Listens on `socket` and forwards each connection to `upstream`.
    pub fn start(socket: &Path, upstream: &Path) -> anyhow::Result<Proxy> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)
            .with_context(|| format!("binding the proxy at {}", socket.display()))?;
        let counts = Counts::default();
        let (c, up) = (counts.clone(), upstream.to_path_buf());
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                tokio::spawn(relay(down, up.clone(), c.clone()));
            }
        });
        Ok(Proxy {
            socket: socket.to_path_buf(),
            counts,
            accept,
        })
    }
}

/// One connection: bytes both ways, the requests counted. An engine that is gone closes the
/// server's connection at once, as the engine's own socket would refuse it.
async fn relay(down: UnixStream, upstream: PathBuf, counts: Counts) {
    let Ok(up) = UnixStream::connect(&upstream).await else {
        return;
    };
    let (mut down_r, mut down_w) = down.into_split();
    let (mut up_r, mut up_w) = up.into_split();
    let requests = async {
        let mut parser = RequestParser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match down_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for kind in parser.feed(&buf[..n]) {
                counts.add(kind);
            }
            if up_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = up_w.shutdown().await;
    };
    let responses = async {
        let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
        let _ = down_w.shutdown().await;
    };
    // Either side closing ends the connection: a long-lived `/events` answer ends when the
    // engine dies, and the server's dropped connection ends the upstream one.
    tokio::select! {
        _ = requests => {}
        _ = responses => {}
    }
}

#[derive(Debug)]
enum State {
    Head,
    /// Bytes of a Content-Length body still to skip.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Bytes of a chunk's data and its CRLF still to skip.
    ChunkData(u64),
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    /// An upgraded connection: no more HTTP.
    Raw,
}

/// Finds the request heads in a client's byte stream, however it is split into reads.
#[derive(Debug)]
pub struct RequestParser {
    state: State,
    buf: Vec<u8>,
}

impl Default for RequestParser {
    fn default() -> RequestParser {
        RequestParser {
            state: State::Head,
            buf: Vec::new(),
        }
    }
}

impl RequestParser {
    /// Takes the next bytes; returns the kinds of the requests whose heads completed in them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        if matches!(self.state, State::Raw) {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            match self.state {
                State::Raw => {
                    at = self.buf.len();
                    break;
                }
                State::Head => {
                    if rest.is_empty() {
                        break;
                    }
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut headers);
                    match req.parse(rest) {
                        Ok(httparse::Status::Complete(n)) => {
                            let kind = kind(req.method.unwrap_or("?"), req.path.unwrap_or("?"));
                            let header = |name: &str| {
                                req.headers
                                    .iter()
                                    .find(|h| h.name.eq_ignore_ascii_case(name))
                                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
                            };
                            let upgrade = header("upgrade").is_some()
                                || header("connection").is_some_and(|c| c.contains("upgrade"));
                            let chunked =
                                header("transfer-encoding").is_some_and(|t| t.contains("chunked"));
                            let length = header("content-length")
                                .and_then(|l| l.trim().parse::<u64>().ok())
                                .unwrap_or(0);
                            out.push(kind);
                            at += n;
                            self.state = if upgrade {
                                // The body, if any, is a stream of its own from here.
                                State::Raw
                            } else if chunked {
                                State::ChunkSize
                            } else if length > 0 {
                                State::Body(length)
                            } else {
                                State::Head
                            };
                        }
                        Ok(httparse::Status::Partial) => break,
                        // Not HTTP (it never happens with Docker clients): stop counting.
                        Err(_) => self.state = State::Raw,
                    }
                }
                State::Body(left) => {
                    let take = left.min(rest.len() as u64);
                    at += take as usize;
                    self.state = if take == left {
                        State::Head
                    } else {
                        State::Body(left - take)
                    };
                    if take < left {
                        break;
                    }
                }
                State::ChunkData(left) => {
                    let take = left.min(rest.len() as u64);
                    at += take as usize;
                    if take < left {
                        self.state = State::ChunkData(left - take);
                        break;
                    }
                    self.state = State::ChunkSize;
                }
                State::ChunkSize | State::Trailer => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let line = String::from_utf8_lossy(&rest[..end]).to_string();
                    at += end + 2;
                    self.state = match self.state {
                        State::Trailer if line.is_empty() => State::Head,
                        State::Trailer => State::Trailer,
                        _ => {
                            let hex = line.split(';').next().unwrap_or("").trim();
                            match u64::from_str_radix(hex, 16) {
                                Ok(0) => State::Trailer,
                                Ok(size) => State::ChunkData(size + 2),
                                Err(_) => State::Raw,
                            }
                        }
                    };
                }
            }
        }
        self.buf.drain(..at);
        out
    }
}

/// A request's kind: its method and path without the API version, the query, or the id of
/// the container (volume, image, exec) it names.
pub fn kind(method: &str, target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .first()
        .is_some_and(|s| s.starts_with('v') && s[1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        segments.remove(0);
    }
    let named = matches!(
        segments.first().copied(),
        Some("containers" | "volumes" | "images" | "exec" | "networks")
    );
    if named
        && segments.len() >= 2
        && !matches!(segments[1], "json" | "create" | "prune" | "load" | "search")
    {
        segments[1] = "{id}";
    }
    format!("{method} /{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_leave_out_versions_queries_and_ids() {
        assert_eq!(kind("GET", "/v1.47/_ping"), "GET /_ping");
        assert_eq!(kind("GET", "/_ping"), "GET /_ping");
        assert_eq!(
            kind("GET", "/v1.47/containers/json?all=true&filters=%7B%7D"),
            "GET /containers/json"
        );
        assert_eq!(
            kind("POST", "/v1.47/containers/cp-abc/start"),
            "POST /containers/{id}/start"
        );
        assert_eq!(
            kind("POST", "/containers/create?name=x"),
            "POST /containers/create"
        );
        assert_eq!(kind("GET", "/v1.47/events?since=1"), "GET /events");
    }

    #[test]
    fn counts_heads_across_bodies_and_splits() {
        let mut p = RequestParser::default();
        let stream = b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n\
            POST /containers/create?name=a HTTP/1.1\r\nContent-Length: 30\r\n\r\n\
            {\"Image\":\"GET / HTTP/1.1\"}\r\n\r\n\
            POST /images/load HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nGET /\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
            DELETE /v1.47/containers/a?force=true HTTP/1.1\r\n\r\n";
        // Byte by byte: every split point is met.
        let mut seen = Vec::new();
        for b in stream.iter() {
            seen.extend(p.feed(std::slice::from_ref(b)));
        }
        assert_eq!(
            seen,
            [
                "GET /_ping",
                "POST /containers/create",
                "POST /images/load",
                "DELETE /containers/{id}"
            ]
        );
        // All at once: the same.
        let mut p = RequestParser::default();
        assert_eq!(p.feed(stream).len(), 4);
    }

    #[test]
    fn an_upgraded_connection_is_not_parsed_further() {
        let mut p = RequestParser::default();
        let got = p.feed(
            b"POST /containers/a/attach?stream=1 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\
              GET /_ping HTTP/1.1\r\n\r\n",
        );
        assert_eq!(got, ["POST /containers/{id}/attach"]);
    }

    #[tokio::test]
    async fn the_proxy_forwards_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up.sock");
        let engine = UnixListener::bind(&up).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = engine.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut parser = RequestParser::default();
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        for _ in parser.feed(&buf[..n]) {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                                .await;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(&dir.path().join("p.sock"), &up).unwrap();
        let mut c = UnixStream::connect(&proxy.socket).await.unwrap();
        c.write_all(b"GET /_ping HTTP/1.1\r\n\r\nGET /v1.4/_ping HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 * 40 {
            let mut buf = [0u8; 256];
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(proxy.counts.snapshot().get("GET /_ping"), Some(&2));
    }
}
