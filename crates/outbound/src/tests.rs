//! The client end to end against small HTTP servers on loopback (127.0.0.1 plays the server's
//! own network; 127.0.0.2, allowed by name, plays a public host), with a table for a resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::resolver::tests::Table;
use crate::*;

/// The TLS setup every reqwest client of the workspace is built with.
fn tls() -> reqwest::ClientBuilder {
    cloudphone_client::tls::builder(None).unwrap()
}

/// What a test server answers to every request.
#[derive(Clone)]
enum Answer {
    /// 200 with this body, with a Content-Length or ended by closing the connection.
    Body(Vec<u8>, bool),
    /// 302 to this URL.
    Redirect(String),
    /// The head and the first bytes of a longer body, then nothing.
    Stall,
    /// Accepts and never answers.
    Silent,
    /// The head, then one byte of the body at each interval.
    Trickle(Duration),
}

struct Web {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Web {
    async fn on(ip: &str, answer: Answer) -> Web {
        Web::bind(SocketAddr::new(ip.parse().unwrap(), 0), answer)
            .await
            .unwrap()
    }

    async fn bind(at: SocketAddr, answer: Answer) -> std::io::Result<Web> {
        let listener = TcpListener::bind(at).await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, answer.clone()));
            }
        });
        Ok(Web { addr, hits })
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, answer: Answer) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = match answer {
        Answer::Body(body, with_length) => {
            let head = if with_length {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string()
            };
            let _ = stream.write_all(head.as_bytes()).await;
            stream.write_all(&body).await
        }
        Answer::Redirect(to) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await
        }
        Answer::Stall => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                .await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        Answer::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        Answer::Trickle(every) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                .await;
            for _ in 0..1000 {
                if stream.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(every).await;
            }
            Ok(())
        }
    };
}

/// 127.0.0.2 stands for a public host: allowed by name, the rest of loopback refused.
fn second_loopback_allowed() -> AddressPolicy {
    AddressPolicy {
        allow_private: false,
        allowed: vec!["127.0.0.2/32".parse().unwrap()],
    }
}

fn client(policy: AddressPolicy, lookup: Arc<Table>) -> Outbound {
    Outbound::with_lookup(
        OutboundConfig {
            policy,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_millis(400),
            total_timeout: Duration::from_secs(5),
            max_bytes: 1000,
            max_redirects: 3,
        },
        tls(),
        lookup,
    )
    .unwrap()
}

fn names() -> Arc<Table> {
    Table::with(&[
        ("localhost", &[&["127.0.0.1"]]),
        ("internal.test", &[&["127.0.0.1"]]),
        ("files.test", &[&["127.0.0.2"]]),
    ])
}

fn is_refusal(e: &FetchError) -> bool {
    e.refused().is_some() && e.to_string() == UNREACHABLE
}

#[tokio::test]
async fn the_server_s_own_network_is_refused_in_every_spelling_and_never_connected_to() {
    let internal = Web::on("127.0.0.1", Answer::Body(b"secret".to_vec(), true)).await;
    let out = client(AddressPolicy::public_only(), names());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got");
    let port = internal.addr.port();
    for url in [
        internal.url("127.0.0.1", "/"),
        internal.url("localhost", "/"),
        internal.url("internal.test", "/"),
        internal.url("[::ffff:127.0.0.1]", "/"),
        internal.url("2130706433", "/"),
        internal.url("0x7f.1", "/"),
        format!("http://127.1:{port}/"),
        format!("http://0.0.0.0:{port}/"),
    ] {
        let e = out.download(&url, &dest).await.unwrap_err();
        assert!(is_refusal(&e), "{url}: {e:?}");
        assert!(!dest.exists());
    }
    assert_eq!(internal.hits(), 0);
    // With private addresses allowed, the same URL is fetched.
    let open = client(AddressPolicy::anything(), names());
    let got = open
        .download(&internal.url("internal.test", "/"), &dest)
        .await
        .unwrap();
    assert_eq!(got.size, 6);
    assert_eq!(std::fs::read(&dest).unwrap(), b"secret");
}

#[tokio::test]
async fn a_redirect_is_followed_only_to_where_the_first_url_could_go() {
    let internal = Web::on("127.0.0.1", Answer::Body(b"secret".to_vec(), true)).await;
    let public = Web::on("127.0.0.2", Answer::Body(b"public".to_vec(), true)).await;
    let out = client(second_loopback_allowed(), names());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got");
    for target in [
        internal.url("127.0.0.1", "/secret"),
        internal.url("internal.test", "/secret"),
        internal.url("[::ffff:7f00:1]", "/secret"),
    ] {
        let hop = Web::on("127.0.0.2", Answer::Redirect(target.clone())).await;
        let e = out
            .download(&hop.url("127.0.0.2", "/"), &dest)
            .await
            .unwrap_err();
        assert!(is_refusal(&e), "{target}: {e:?}");
        assert_eq!(hop.hits(), 1, "the first hop is allowed");
        assert!(!dest.exists());
    }
    assert_eq!(internal.hits(), 0);
    // reqwest hands back a redirect to another scheme unfollowed.
    let hop = Web::on("127.0.0.2", Answer::Redirect("file:///etc/passwd".into())).await;
    let e = out
        .download(&hop.url("127.0.0.2", "/"), &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::Status(s) if s.as_u16() == 302),
        "{e:?}"
    );
    assert!(!dest.exists());
    // A redirect to an allowed host, by name or by address, is followed.
    for target in [public.url("files.test", "/"), public.url("127.0.0.2", "/")] {
        let hop = Web::on("127.0.0.2", Answer::Redirect(target)).await;
        let got = out
            .download(&hop.url("files.test", "/"), &dest)
            .await
            .unwrap();
        assert_eq!(got.size, 6);
        assert_eq!(std::fs::read(&dest).unwrap(), b"public");
    }
}

#[tokio::test]
async fn redirects_stop_after_a_few_hops() {
    let table = names();
    let out = client(second_loopback_allowed(), table);
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    // A server that redirects to itself, on a port known before it starts.
    let Ok(looping) = Web::bind(
        format!("127.0.0.2:{port}").parse().unwrap(),
        Answer::Redirect(format!("http://127.0.0.2:{port}/again")),
    )
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let e = out
        .download(&looping.url("127.0.0.2", "/"), &dir.path().join("x"))
        .await
        .unwrap_err();
    assert_eq!(e.refused(), Some(&Refused::TooManyRedirects(3)));
    assert_eq!(looping.hits(), 4, "the first request and three hops");
}

/// A name is looked up once per connection and the connection goes to an address that lookup
/// returned and the filter passed: a second answer (rebinding) is never used.
#[tokio::test]
async fn the_address_connected_to_is_the_address_checked() {
    let public = Web::on("127.0.0.2", Answer::Body(b"public".to_vec(), true)).await;
    let port = public.addr.port();
    // Where a second lookup would send the connection, on the same port if it is free.
    let internal = Web::bind(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Answer::Body(b"secret".to_vec(), true),
    )
    .await
    .ok();
    let table = Table::with(&[
        ("rebind.test", &[&["127.0.0.2"], &["127.0.0.1"]]),
        ("mixed.test", &[&["127.0.0.1", "127.0.0.2"]]),
    ]);
    let out = client(second_loopback_allowed(), table.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got");
    out.download(&format!("http://rebind.test:{port}/"), &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"public");
    assert_eq!(table.lookups("rebind.test"), 1);
    // A name with a refused address among its answers connects only to the allowed one.
    out.download(&format!("http://mixed.test:{port}/"), &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"public");
    if let Some(internal) = internal {
        assert_eq!(internal.hits(), 0);
    }
    // The name's next answer is refused, and a new client (no pooled connection) says so.
    let fresh = client(second_loopback_allowed(), table.clone());
    let e = fresh
        .download(&format!("http://rebind.test:{port}/"), &dest)
        .await
        .unwrap_err();
    assert!(is_refusal(&e), "{e:?}");
}

#[tokio::test]
async fn a_body_over_the_cap_is_cut_and_nothing_is_kept() {
    let out = client(AddressPolicy::anything(), names());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big");
    for with_length in [true, false] {
        let big = Web::on("127.0.0.1", Answer::Body(vec![7u8; 5000], with_length)).await;
        let e = out
            .download(&big.url("127.0.0.1", "/"), &dest)
            .await
            .unwrap_err();
        assert!(
            matches!(e, FetchError::TooLarge { limit: 1000 }),
            "{with_length}: {e:?}"
        );
        assert!(!dest.exists());
    }
    let exact = Web::on("127.0.0.1", Answer::Body(vec![7u8; 1000], false)).await;
    let got = out
        .download(&exact.url("127.0.0.1", "/"), &dest)
        .await
        .unwrap();
    assert_eq!(got.size, 1000);
}

#[tokio::test]
async fn a_stalled_or_endless_transfer_ends_at_its_timeout() {
    let out = client(AddressPolicy::anything(), names());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("slow");
    let stall = Web::on("127.0.0.1", Answer::Stall).await;
    let started = Instant::now();
    let e = out
        .download(&stall.url("127.0.0.1", "/"), &dest)
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Stalled(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!dest.exists());
    // A byte every 100 ms never trips the idle timeout; the total one ends it.
    let short = Outbound::with_lookup(
        OutboundConfig {
            policy: AddressPolicy::anything(),
            idle_timeout: Duration::from_millis(400),
            total_timeout: Duration::from_millis(900),
            ..OutboundConfig::default()
        },
        tls(),
        names(),
    )
    .unwrap();
    let trickle = Web::on("127.0.0.1", Answer::Trickle(Duration::from_millis(100))).await;
    let started = Instant::now();
    let e = short
        .download(&trickle.url("127.0.0.1", "/"), &dest)
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::TooSlow(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!dest.exists());
}

/// The port scanner: a closed port, a port that accepts and never answers, and a refused
/// address fail with one message.
#[tokio::test]
async fn closed_silent_and_refused_fail_alike() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x");
    let closed = {
        let l = TcpListener::bind("127.0.0.2:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = Web::on("127.0.0.2", Answer::Silent).await;
    let refused_target = Web::on("127.0.0.1", Answer::Body(b"x".to_vec(), true)).await;
    let out = client(second_loopback_allowed(), names());
    let mut seen = Vec::new();
    for url in [
        format!("http://127.0.0.2:{closed}/a.apk"),
        silent.url("127.0.0.2", "/a.apk"),
        refused_target.url("127.0.0.1", "/a.apk"),
        refused_target.url("internal.test", "/a.apk"),
        "http://nowhere.test/a.apk".to_string(),
    ] {
        let e = out.download(&url, &dest).await.unwrap_err();
        assert!(matches!(e, FetchError::Unreachable { .. }), "{url}: {e:?}");
        seen.push(e.to_string());
    }
    assert!(seen.iter().all(|m| m == UNREACHABLE), "{seen:?}");
}

#[tokio::test]
async fn a_post_without_redirects_takes_the_redirect_as_its_answer() {
    let internal = Web::on("127.0.0.1", Answer::Body(Vec::new(), true)).await;
    let hop = Web::on(
        "127.0.0.2",
        Answer::Redirect(internal.url("127.0.0.1", "/")),
    )
    .await;
    let out = Outbound::with_lookup(
        OutboundConfig {
            policy: second_loopback_allowed(),
            max_redirects: 0,
            ..OutboundConfig::default()
        },
        tls(),
        names(),
    )
    .unwrap();
    let status = out
        .post(
            &hop.url("127.0.0.2", "/hook"),
            &[("x-test", "1".to_string())],
            "{}".into(),
        )
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 302);
    let e = out
        .post(&internal.url("127.0.0.1", "/hook"), &[], "{}".into())
        .await
        .unwrap_err();
    assert!(is_refusal(&e));
    assert_eq!(internal.hits(), 0);
}

#[tokio::test]
async fn a_url_is_checked_before_it_is_registered() {
    let table = Table::with(&[
        ("inside.test", &[&["8.8.8.8", "10.0.0.1"]]),
        ("outside.test", &[&["8.8.8.8"]]),
    ]);
    let out = client(AddressPolicy::public_only(), table);
    assert_eq!(out.check("https://outside.test/hook").await, Ok(()));
    assert_eq!(out.check("https://8.8.8.8/hook").await, Ok(()));
    // One private answer is enough to refuse the name.
    assert!(out.check("https://inside.test/hook").await.is_err());
    for url in [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::1]/",
        "http://[fec0::1]/",
        "http://nowhere.test/",
        "ftp://8.8.8.8/",
        "not a url",
    ] {
        assert!(out.check(url).await.is_err(), "{url}");
    }
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(!is_public(ip));
    // With everything allowed, no name is looked up (an unknown one is taken as given).
    let table = Table::with(&[]);
    let open = client(AddressPolicy::anything(), table.clone());
    assert_eq!(open.check("https://nowhere.test/hook").await, Ok(()));
    assert_eq!(table.lookups("nowhere.test"), 0);
    assert!(open.check("ftp://nowhere.test/hook").await.is_err());
}
