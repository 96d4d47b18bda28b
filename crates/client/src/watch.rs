//! The watch stream's reader: `GET /tasks/watch` (server-sent events) opened signed, read
//! event by event, and reopened with `Last-Event-ID` whenever the connection is cut, so that
//! the caller sees every event once whatever happens to the connection.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::error::Error;
use crate::http::Client;
use crate::sse::Parser;

/// One event of the stream: its id (the resume point) and its JSON data.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: String,
    pub data: serde_json::Value,
}

/// Reconnections in a row that may fail before the watch gives up.
const MAX_FAILURES: u32 = 20;

type Body = BoxStream<'static, reqwest::Result<bytes::Bytes>>;
type OnRetry<'c> = Box<dyn FnMut(&Error) + Send + 'c>;

/// A watch that survives cuts.
pub struct Watch<'c> {
    client: &'c Client,
    query: Vec<(String, String)>,
    last_id: Option<String>,
    body: Option<Body>,
    parser: Parser,
    ready: VecDeque<Event>,
    /// How long to wait before reconnecting.
    pub retry: Duration,
    /// Reconnections in a row that failed.
    failures: u32,
    /// Told of each failed reconnection that will be tried again.
    on_retry: Option<OnRetry<'c>>,
}

impl<'c> Watch<'c> {
    /// Opens the stream with DescribeTasks-style `query` filters, from now on (or after
    /// `last_id`); returns once the server has answered, so that nothing that happens from
    /// here on is missed.
    pub async fn open(
        client: &'c Client,
        query: Vec<(String, String)>,
        last_id: Option<String>,
    ) -> Result<Watch<'c>, Error> {
        let mut w = Watch {
            client,
            query,
            last_id,
            body: None,
            parser: Parser::default(),
            ready: VecDeque::new(),
            retry: Duration::from_millis(500),
            failures: 0,
            on_retry: None,
        };
        w.connect().await?;
        Ok(w)
    }

    /// Calls `f` with the reason of each failed reconnection before the next try.
    pub fn on_retry(&mut self, f: impl FnMut(&Error) + Send + 'c) {
        self.on_retry = Some(Box::new(f));
    }

    /// The id of the last event returned: where a new watch would resume.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    async fn connect(&mut self) -> Result<(), Error> {
        let response = self
            .client
            .open_watch(&self.query, self.last_id.as_deref())
            .await?;
        self.body = Some(response.bytes_stream().boxed());
        self.parser = Parser::default();
        Ok(())
    }

    /// The next event; reconnects (after [`Watch::retry`]) when the connection is cut.
    pub async fn next(&mut self) -> Result<Event, Error> {
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
                    for frame in self.parser.feed(&bytes) {
                        let data = serde_json::from_str(&frame.data).map_err(Error::Event)?;
                        self.ready.push_back(Event {
                            id: frame.id.unwrap_or_default(),
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
                            if let Some(f) = self.on_retry.as_mut() {
                                f(&e);
                            }
                        }
                    }
                }
            }
        }
    }
}
