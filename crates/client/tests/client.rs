//! The client against a scripted loopback server: what goes on the wire, typed answers and
//! refusals, the watch stream resuming with `Last-Event-ID` after a cut, and the errors of a
//! server that is not there or does not speak TLS.
#![cfg(feature = "http")]

use std::time::Duration;

use cloudphone_client::{Client, Credentials, Error, Watch, params};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

fn creds() -> Credentials {
    Credentials {
        key_id: "testid".into(),
        secret: "testsecret".into(),
    }
}

/// The request head (request line and headers, names as sent).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A server answering its connections in turn with `answers` (each a whole response, the
/// connection closed after it); the heads it received come out of the channel.
async fn scripted(answers: Vec<String>) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (heads, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for answer in answers {
            let (mut stream, _) = listener.accept().await.unwrap();
            heads.send(read_head(&mut stream).await).unwrap();
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    (address, received)
}

fn json(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
}

fn events(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}")
}

#[tokio::test]
async fn a_typed_call_and_a_refusal() {
    let (address, mut heads) = scripted(vec![
        json("200 OK", r#"{"RequestId":"r-1","TotalCount":2}"#),
        json(
            "400 Bad Request",
            r#"{"RequestId":"r-2","Code":"InvalidParameter.TaskStatuses","Message":"no"}"#,
        ),
    ])
    .await;
    let client = Client::new(&format!("http://{address}"), creds()).unwrap();
    let body: serde_json::Value = client
        .call("DescribeTasks", &params(&[("MaxResults", "1")]))
        .await
        .unwrap();
    assert_eq!(body["TotalCount"], 2);
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("post /?maxresults=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("host: {address}\r\n")), "{head}");
    assert!(head.contains("x-acs-action: describetasks\r\n"));
    assert!(head.contains("authorization: acs3-hmac-sha256 credential=testid,"));

    let refused = client
        .call::<serde_json::Value>("DescribeTasks", &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "InvalidParameter.TaskStatuses: no",
        "{refused:?}"
    );
    match refused {
        Error::Api {
            status, request_id, ..
        } => assert_eq!((status, request_id.as_str()), (400, "r-2")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_watch_resumes_after_a_cut_with_last_event_id() {
    let (address, mut heads) = scripted(vec![
        events(": ready\n\nid: 5-1\ndata: {\"TaskId\":\"t-1\"}\n\n"),
        events("id: 5-2\ndata: {\"TaskId\":\"t-2\"}\n\n"),
    ])
    .await;
    let client = Client::new(&address, creds()).unwrap();
    let query = params(&[("TaskIds.1", "t-1")]);
    let mut watch = Watch::open(&client, query, None).await.unwrap();
    watch.retry = Duration::from_millis(10);
    let first = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        first.starts_with("get /tasks/watch?taskids.1=t-1 http/1.1"),
        "{first}"
    );
    assert!(first.contains("x-acs-action: watchtasks\r\n"));
    assert!(!first.contains("last-event-id"));

    let e = watch.next().await.unwrap();
    assert_eq!((e.id.as_str(), &e.data["TaskId"]), ("5-1", &"t-1".into()));
    // The first connection is closed after its event: the next one resumes after 5-1.
    let e = watch.next().await.unwrap();
    assert_eq!((e.id.as_str(), &e.data["TaskId"]), ("5-2", &"t-2".into()));
    let second = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(second.contains("last-event-id: 5-1\r\n"), "{second}");
    assert_eq!(watch.last_id(), Some("5-2"));
}

#[tokio::test]
async fn nobody_listening_and_plain_http_behind_https() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let client = Client::new(&address, creds()).unwrap();
    let e = client
        .call::<serde_json::Value>("X", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("calling http://{address}/"))
    );

    // A plain HTTP server answers the TLS client hello with an HTTP error.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 64];
        let _ = stream.read(&mut hello).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let client = Client::new(&format!("https://{address}"), creds()).unwrap();
    let e = client
        .call::<serde_json::Value>("X", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Handshake { .. }), "{e:?}");
    assert!(e.to_string().contains("plain http://"), "{e}");
}
