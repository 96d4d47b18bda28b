//! A client of the watch stream (`GET /tasks/watch`, server-sent events): opens it signed,
//! reads its events, and on a cut reconnects with `Last-Event-ID`, so that the caller sees
//! every event once whatever happens to the connection.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::Value;

use crate::bench::client::Client;

/// One event of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEvent {
    pub id: String,
    pub data: Value,
}

/// The part of an event stream read so far, split into events as they complete.
#[derive(Default)]
struct Parser {
    buffer: String,
}

impl Parser {
    /// Adds bytes read; returns the events they completed (comments and keep-alives are no
    /// events).
    fn feed(&mut self, chunk: &str) -> Vec<(Option<String>, String)> {
        self.buffer.push_str(&chunk.replace("\r\n", "\n"));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut id, mut data) = (None, Vec::new());
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = Some(value.to_string()),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if !data.is_empty() {
                out.push((id, data.join("\n")));
            }
        }
        out
    }
}

/// A watch that survives cuts.
pub struct Watch<'c> {
    client: &'c Client,
    query: Vec<(String, String)>,
    last_id: Option<String>,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    parser: Parser,
    ready: std::collections::VecDeque<StreamEvent>,
    /// How long to wait before reconnecting.
    pub retry: Duration,
    /// Reconnections in a row that failed.
    failures: u32,
}

/// Reconnections in a row that may fail before the watch gives up.
const MAX_FAILURES: u32 = 20;

impl<'c> Watch<'c> {
    /// Opens the stream with DescribeTasks-style `query` filters, from now on (or after
    /// `last_id`); returns once the server has answered, so that nothing that happens from
    /// here on is missed.
    pub async fn open(
        client: &'c Client,
        query: Vec<(String, String)>,
        last_id: Option<String>,
    ) -> anyhow::Result<Watch<'c>> {
        let mut w = Watch {
            client,
            query,
            last_id,
            body: None,
            parser: Parser::default(),
            ready: Default::default(),
            retry: Duration::from_millis(500),
            failures: 0,
        };
        w.connect().await?;
        Ok(w)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let extra: Vec<(&str, String)> = self
            .last_id
            .iter()
            .map(|id| ("last-event-id", id.clone()))
            .collect();
        let response = self
            .client
            .get_signed(
                cloudphone_api::watch::PATH,
                cloudphone_api::watch::ACTION,
                &self.query,
                &extra,
            )
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            bail!(
                "{}: {} (HTTP {status})",
                body["Code"].as_str().unwrap_or("Error"),
                body["Message"]
                    .as_str()
                    .unwrap_or("the watch stream was refused")
            );
        }
        self.body = Some(response.bytes_stream().boxed());
        self.parser = Parser::default();
        Ok(())
    }

    /// The next event; reconnects (after [`Watch::retry`]) when the connection is cut.
    pub async fn next(&mut self) -> anyhow::Result<StreamEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                self.last_id = Some(e.id.clone());
                return Ok(e);
            }
            let chunk = match self.body.as_mut() {
                Some(body) => body.next().await,
                None => None,
            };
            match chunk {
                Some(Ok(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    for (id, data) in self.parser.feed(&text) {
                        let data =
                            serde_json::from_str(&data).context("an event that is not JSON")?;
                        self.ready.push_back(StreamEvent {
                            id: id.unwrap_or_default(),
                            data,
                        });
                    }
                }
                Some(Err(_)) | None => {
                    self.body = None;
                    tokio::time::sleep(self.retry).await;
                    match self.connect().await {
                        Ok(()) => self.failures = 0,
                        Err(e) if self.failures >= MAX_FAILURES => return Err(e),
                        Err(e) => {
                            self.failures += 1;
                            eprintln!("the watch stream was cut; reconnecting: {e:#}");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_whatever_the_chunks() {
        let mut p = Parser::default();
        assert!(
            p.feed(": keep-alive\n\nid: 0-1\nevent: task\nda")
                .is_empty()
        );
        let got = p.feed("ta: {\"a\":1}\n\nid:0-2\r\ndata:{}\r\n\r\n");
        assert_eq!(
            got,
            [
                (Some("0-1".to_string()), "{\"a\":1}".to_string()),
                (Some("0-2".to_string()), "{}".to_string())
            ]
        );
        assert!(p.feed(":\n\n").is_empty());
    }
}
