//! A program's viewer of a phone's live screen: a WebSocket to `/streams/<InstanceId>`
//! (tokio-tungstenite), the ticket as its hello, then the server's texts and frames as they
//! come, each frame's 24-byte header read with the server's own decoder. And a stalled viewer:
//! one that says hello and then never reads, with a small receive buffer, so that the server's
//! writes to it stall within moments.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cloudphone_client::{Client, params, push_list};
use cloudphone_stream::protocol::{FrameHeader, HEADER_LEN};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Fresh tickets for `phones` (BatchGetAcpConnectionTicket, 100 a call), in their order.
pub async fn tickets(client: &Client, phones: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(phones.len());
    for chunk in phones.chunks(100) {
        let mut p = params(&[]);
        push_list(&mut p, "InstanceIds", chunk);
        let body = client
            .call::<Value>("BatchGetAcpConnectionTicket", &p)
            .await?;
        let models = body
            .get("InstanceConnectionModels")
            .and_then(Value::as_array)
            .context("BatchGetAcpConnectionTicket: no InstanceConnectionModels")?;
        for m in models {
            let ticket = m
                .get("Ticket")
                .and_then(Value::as_str)
                .with_context(|| format!("BatchGetAcpConnectionTicket gave no ticket: {m}"))?;
            out.push(ticket.to_string());
        }
    }
    Ok(out)
}

/// What a viewer read.
#[derive(Debug)]
pub enum Event {
    Frame {
        header: FrameHeader,
        /// Bytes of the WebSocket message (header and payload).
        bytes: usize,
    },
    Text(Value),
    Closed(u16),
}

pub struct Viewer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The session's tag: frames carrying it show this viewer's input.
    pub tag: u32,
    pub width: u16,
    pub height: u16,
}

fn url(address: &str, phone: &str) -> String {
    format!("ws://{address}/streams/{phone}")
}

fn hello(ticket: &str) -> Message {
    Message::Text(json!({"t": "hello", "ticket": ticket}).to_string().into())
}

impl Viewer {
    /// Connects, says hello and reads the server's `hello`.
    pub async fn open(address: &str, phone: &str, ticket: &str) -> anyhow::Result<Viewer> {
        // Small messages (input) go out at once, as the server's replies do.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url(address, phone), None, true)
            .await
            .with_context(|| format!("connecting a viewer of {phone}"))?;
        let mut v = Viewer {
            ws,
            tag: 0,
            width: 0,
            height: 0,
        };
        v.ws.send(hello(ticket)).await?;
        loop {
            match v.next().await? {
                Event::Text(m) if m["t"] == "hello" => {
                    v.tag = m["tag"].as_u64().context("hello without a tag")? as u32;
                    v.width = m["width"].as_u64().unwrap_or(0) as u16;
                    v.height = m["height"].as_u64().unwrap_or(0) as u16;
                    return Ok(v);
                }
                Event::Closed(code) => bail!("the viewer of {phone} was closed with {code}"),
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, m: Value) -> anyhow::Result<()> {
        self.ws.send(Message::Text(m.to_string().into())).await?;
        Ok(())
    }

    /// The next frame or text.
    pub async fn next(&mut self) -> anyhow::Result<Event> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .context("nothing from the server for 10 s")?;
            return Ok(match m {
                None => Event::Closed(1006),
                Some(Err(e)) => bail!("the viewer's socket failed: {e}"),
                Some(Ok(Message::Binary(b))) => Event::Frame {
                    header: FrameHeader::decode(&b).context("a frame shorter than its header")?,
                    bytes: b.len(),
                },
                Some(Ok(Message::Text(t))) => Event::Text(serde_json::from_str(t.as_str())?),
                Some(Ok(Message::Close(c))) => Event::Closed(c.map_or(1005, |c| c.code.into())),
                Some(Ok(_)) => continue,
            });
        }
    }

    /// Reads for `window`; what arrived.
    pub async fn watch(&mut self, window: Duration) -> anyhow::Result<Watched> {
        let mut w = Watched::default();
        let until = Instant::now() + window;
        let started = Instant::now();
        while Instant::now() < until {
            let ev = tokio::select! {
                ev = self.next() => ev?,
                _ = tokio::time::sleep_until(until.into()) => break,
            };
            match ev {
                Event::Frame { header, bytes } => {
                    w.frames += 1;
                    w.bytes += bytes as u64;
                    w.payloads.push((bytes - HEADER_LEN) as u64);
                    w.first_seq.get_or_insert(header.seq);
                    w.last_seq = header.seq;
                }
                Event::Closed(code) => bail!("closed with {code} while watched"),
                Event::Text(_) => {}
            }
        }
        w.seconds = started.elapsed().as_secs_f64();
        Ok(w)
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// What a viewer received over a window.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub frames: u64,
    pub bytes: u64,
    /// Each frame's payload size.
    pub payloads: Vec<u64>,
    pub first_seq: Option<u32>,
    pub last_seq: u32,
    pub seconds: f64,
}

impl Watched {
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }

    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9)
    }

    /// Frames the phone's stream made over the window (by the frame numbers), per second.
    pub fn produced_fps(&self) -> f64 {
        let first = self.first_seq.unwrap_or(self.last_seq);
        f64::from(self.last_seq.wrapping_sub(first)) / self.seconds.max(1e-9)
    }
}

/// A viewer that said hello and never reads again (dropping it closes its socket).
pub struct Stalled {
    _ws: WebSocketStream<TcpStream>,
}

impl Stalled {
    pub async fn open(address: &str, phone: &str, ticket: &str) -> anyhow::Result<Stalled> {
        let socket = TcpSocket::new_v4()?;
        // As small as the kernel allows: the server's writes stall after a few frames.
        socket.set_recv_buffer_size(4096)?;
        let stream = socket.connect(address.parse()?).await?;
        let (mut ws, _) = tokio_tungstenite::client_async(url(address, phone), stream)
            .await
            .context("the stalled viewer's handshake")?;
        ws.send(hello(ticket)).await?;
        Ok(Stalled { _ws: ws })
    }
}
