//! [`Outbound`]: the HTTP client of every request the server makes on a tenant's behalf. Built
//! once per purpose from an [`OutboundConfig`] and a builder with the client crate's TLS setup;
//! it resolves names through the filtering resolver, checks hosts
//! written as addresses and every redirect hop, never uses a proxy (the filter must see the
//! address connected to), and bounds the transfer in time and bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use reqwest::Url;
use tokio::io::AsyncWriteExt;

use crate::error::FetchError;
use crate::policy::{AddressPolicy, Refused};
use crate::redirect;
use crate::resolver::{FilteringResolver, Lookup, SystemLookup, literal};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Which addresses may be connected to.
    pub policy: AddressPolicy,
    /// The TCP (and TLS) connection must be made within this.
    pub connect_timeout: Duration,
    /// The server may send nothing for at most this long, waiting for the answer included.
    pub idle_timeout: Duration,
    /// The whole request, body included, must end within this.
    pub total_timeout: Duration,
    /// The largest body kept (downloads): a larger one fails and nothing is kept.
    pub max_bytes: u64,
    /// Redirects followed, each re-checked; 0: a redirect is the answer.
    pub max_redirects: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            policy: AddressPolicy::public_only(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(600),
            max_bytes: 5 << 30,
            max_redirects: 5,
        }
    }
}

/// Building the client failed.
#[derive(Debug, thiserror::Error)]
#[error("building the outbound HTTP client: {0}")]
pub struct BuildError(String);

/// What a download stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub size: u64,
    pub md5_hex: String,
}

#[derive(Clone)]
pub struct Outbound {
    http: reqwest::Client,
    config: Arc<OutboundConfig>,
    lookup: Arc<dyn Lookup>,
}

impl Outbound {
    /// A client resolving names with the system's resolver. `tls` is a reqwest builder with
    /// the process's TLS setup, `cloudphone_client::tls::builder(None)` (with reqwest's
    /// `rustls-no-provider` a client built without one panics); everything else about the
    /// connection is set here.
    pub fn new(
        config: OutboundConfig,
        tls: reqwest::ClientBuilder,
    ) -> Result<Outbound, BuildError> {
        Outbound::with_lookup(config, tls, Arc::new(SystemLookup))
    }

    /// A client resolving names through `lookup` (tests; an operator's own resolver).
    pub fn with_lookup(
        config: OutboundConfig,
        tls: reqwest::ClientBuilder,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Outbound, BuildError> {
        let policy = Arc::new(config.policy.clone());
        let http = tls
            .dns_resolver(FilteringResolver {
                lookup: lookup.clone(),
                policy: policy.clone(),
            })
            .redirect(redirect::policy(policy, config.max_redirects))
            .no_proxy()
            .referer(false)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.idle_timeout)
            .timeout(config.total_timeout)
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Outbound {
            http,
            config: Arc::new(config),
            lookup,
        })
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    fn parse(url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|_| FetchError::BadUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(FetchError::BadUrl);
        }
        Ok(parsed)
    }

    /// Sends `request` (for `url`) once the URL's own host passed the filter.
    async fn send(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FetchError> {
        if let Err(refused) = redirect::check_url(&self.config.policy, url) {
            return Err(FetchError::Unreachable {
                detail: refused.to_string(),
                refused: Some(refused),
            });
        }
        request
            .send()
            .await
            .map_err(|e| FetchError::unreachable(&e))
    }

    /// GETs `url` into the file `dest` (created or truncated), hashing it on the way; on any
    /// failure the file is removed, so nothing half-fetched or over the cap stays.
    pub async fn download(&self, url: &str, dest: &Path) -> Result<Downloaded, FetchError> {
        let got = self.download_into(url, dest).await;
        if got.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        got
    }

    async fn download_into(&self, url: &str, dest: &Path) -> Result<Downloaded, FetchError> {
        let started = Instant::now();
        let url = Outbound::parse(url)?;
        let mut response = self.send(&url, self.http.get(url.clone())).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        let limit = self.config.max_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(FetchError::Local)?;
        let (mut size, mut md5) = (0u64, Md5::new());
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(self.body_error(&e, started)),
            };
            size += chunk.len() as u64;
            // Stop reading at the cap: a body without (or lying about) its length is cut here.
            if size > limit {
                return Err(FetchError::TooLarge { limit });
            }
            md5.update(&chunk);
            file.write_all(&chunk).await.map_err(FetchError::Local)?;
        }
        file.flush().await.map_err(FetchError::Local)?;
        Ok(Downloaded {
            size,
            md5_hex: hex::encode(md5.finalize()),
        })
    }

    /// What an error while reading the body was: past the total time, a stall, or a break.
    fn body_error(&self, e: &reqwest::Error, started: Instant) -> FetchError {
        if !e.is_timeout() {
            return FetchError::Interrupted(e.to_string());
        }
        if started.elapsed() >= self.config.total_timeout {
            FetchError::TooSlow(self.config.total_timeout)
        } else {
            FetchError::Stalled(self.config.idle_timeout)
        }
    }

    /// POSTs `body` with `headers` to `url`; the answer's status (its body is not read). With
    /// `max_redirects` 0 a redirect is that answer.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<reqwest::StatusCode, FetchError> {
        let url = Outbound::parse(url)?;
        let mut request = self.http.post(url.clone()).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Ok(self.send(&url, request).await?.status())
    }

    /// Whether `url` may be fetched as far as can be told now (when a URL is registered, to
    /// refuse it early): http(s), and its host an allowed address or a name that resolves
    /// only to allowed addresses. The connection is checked again whenever it is made.
    pub async fn check(&self, url: &str) -> Result<(), Refused> {
        let url = Outbound::parse(url).map_err(|_| Refused::NotHttp)?;
        redirect::check_url(&self.config.policy, &url)?;
        let host = url.host_str().unwrap_or_default();
        // Nothing to refuse, nothing to look up.
        if self.config.policy.allow_private || literal(host).is_some() {
            return Ok(());
        }
        let found = self
            .lookup
            .lookup(host)
            .await
            .map_err(|e| Refused::Unresolved {
                host: host.to_string(),
                why: e.to_string(),
            })?;
        if let Some(refused) = found.iter().find_map(|ip| self.config.policy.refusal(*ip)) {
            return Err(refused);
        }
        if found.is_empty() {
            return Err(Refused::NoAddress {
                host: host.to_string(),
            });
        }
        Ok(())
    }
}
