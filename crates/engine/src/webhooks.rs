//! The webhook sender: posts each queued delivery (a batch that ended, queued by the store in
//! the same transaction) to its URL, signed with the webhook's secret, and retries a failed one
//! with exponential backoff until it is delivered or its attempts are spent. Deliveries are
//! leased, so several nodes share the work and an attempt lost with its node is made again.
//!
//! The receiver checks `X-Cloudphone-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
//! HMAC-SHA256 over `<t>.<body>` with the secret, and may drop a repeat by
//! `X-Cloudphone-Delivery` (a delivery is sent again only when its answer was lost).
//!
//! Receivers must be on public addresses, unless the operator allows private ones: a tenant
//! cannot make the server post into its own network. The POST goes through the outbound client
//! ([`cloudphone_outbound`]), whose resolver hands the connection only addresses that pass the
//! filter (checked when the webhook is made too, but the connection is what counts); a
//! redirect is the receiver's answer, never followed.

use std::sync::Arc;
use std::time::Duration;

use cloudphone_core::time::now_ms;
use cloudphone_outbound::{AddressPolicy, FetchError, OutboundConfig, Refused};
use cloudphone_store::{Delivery, DeliveryEnd, Store};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// How often to look for due deliveries.
    pub poll: Duration,
    /// How long a sender holds a delivery it is posting.
    pub lease: Duration,
    /// The wait after the first failure; doubled after each further one, up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: i64,
    /// How long one POST may take.
    pub timeout: Duration,
    /// Deliveries posted at once by this node.
    pub parallel: usize,
    /// Whether receivers may be on loopback, private or link-local addresses (the server's own
    /// network); off, such a delivery fails without being sent.
    pub allow_private: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(600),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
            parallel: 16,
            allow_private: false,
        }
    }
}

impl WebhookConfig {
    /// The outbound client's settings for deliveries: the receiver filter, `timeout` for the
    /// whole POST, no redirect followed.
    pub fn outbound(&self) -> OutboundConfig {
        OutboundConfig {
            policy: if self.allow_private {
                AddressPolicy::anything()
            } else {
                AddressPolicy::public_only()
            },
            connect_timeout: self.timeout,
            idle_timeout: self.timeout,
            total_timeout: self.timeout,
            max_bytes: 0,
            max_redirects: 0,
        }
    }
}

pub struct WebhookSender {
    store: Arc<dyn Store>,
    http: cloudphone_outbound::Outbound,
    config: WebhookConfig,
}

/// A refused delivery's error, the same whatever the address (the tenant learns nothing of how
/// a name resolves inside the server's network).
pub const REFUSED: &str = "the receiver's address is not allowed (not a public address)";

/// A failed attempt's error: the same for a closed port, a silent one and a broken connection.
fn unreachable(e: &FetchError) -> String {
    match e {
        FetchError::Unreachable { .. } => "the receiver could not be reached".into(),
        other => format!("the receiver could not be reached: {other}"),
    }
}

/// The signature header's value for `body` sent at `unix_secs`.
pub fn signature(secret: &str, unix_secs: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{unix_secs}.{body}").as_bytes());
    format!(
        "t={unix_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// How long to wait before trying again a delivery whose attempt `attempt` (from 1) failed:
/// `first_retry`, doubled after each further failure, at most `max_retry`; `None` once its
/// attempts are spent.
fn retry_delay(config: &WebhookConfig, attempt: i64) -> Option<Duration> {
    if attempt >= config.max_attempts {
        return None;
    }
    let shift = u32::try_from(attempt - 1).unwrap_or(u32::MAX).min(20);
    Some(
        config
            .first_retry
            .saturating_mul(1 << shift)
            .min(config.max_retry),
    )
}

impl WebhookSender {
    /// `http`: built from [`WebhookConfig::outbound`].
    pub fn new(
        store: Arc<dyn Store>,
        http: cloudphone_outbound::Outbound,
        config: WebhookConfig,
    ) -> Self {
        WebhookSender {
            store,
            http,
            config,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let sent = self.send_due().await;
            if sent == self.config.parallel {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// Posts the deliveries due now; returns how many.
    pub async fn send_due(&self) -> usize {
        let lease_ms = self.config.lease.as_millis() as i64;
        let due = match self
            .store
            .claim_deliveries(now_ms(), lease_ms, self.config.parallel)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                error!(error = %e, "claiming webhook deliveries failed");
                return 0;
            }
        };
        let n = due.len();
        futures::future::join_all(due.into_iter().map(|d| self.deliver(d))).await;
        n
    }

    async fn deliver(&self, d: Delivery) {
        let sent_at = now_ms();
        let headers = [
            ("content-type", "application/json".to_string()),
            (
                "x-cloudphone-signature",
                signature(&d.secret, sent_at / 1000, &d.body),
            ),
            ("x-cloudphone-delivery", format!("whd-{}", d.seq)),
            ("x-cloudphone-attempt", d.attempt.to_string()),
        ];
        let answer = self.http.post(&d.url, &headers, d.body.clone()).await;
        let retry = retry_delay(&self.config, d.attempt);
        let failed = |status: Option<i64>, error: String| match retry {
            None => DeliveryEnd::GaveUp { status, error },
            Some(wait) => DeliveryEnd::Retry {
                status,
                error,
                at_ms: now_ms() + wait.as_millis() as i64,
            },
        };
        let end = match answer {
            Ok(status) if status.is_success() => DeliveryEnd::Delivered {
                status: i64::from(status.as_u16()),
            },
            Ok(status) => failed(
                Some(i64::from(status.as_u16())),
                format!("the receiver answered HTTP {status}"),
            ),
            Err(e) => {
                debug!(seq = d.seq, detail = %e.detail(), "webhook not delivered");
                match e.refused() {
                    // The address will not change its kind: ended without being sent. A name
                    // that did not resolve may resolve later.
                    Some(r) if !matches!(r, Refused::Unresolved { .. }) => DeliveryEnd::GaveUp {
                        status: None,
                        error: REFUSED.into(),
                    },
                    _ => failed(None, unreachable(&e)),
                }
            }
        };
        match &end {
            DeliveryEnd::Delivered { .. } => debug!(seq = d.seq, "webhook delivered"),
            DeliveryEnd::Retry { error, .. } => {
                info!(seq = d.seq, attempt = d.attempt, %error, "webhook delivery failed; retrying later")
            }
            DeliveryEnd::GaveUp { error, .. } => {
                warn!(seq = d.seq, attempt = d.attempt, %error, "webhook delivery failed for good")
            }
        }
        match self
            .store
            .end_delivery(d.seq, d.attempt, &end, now_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => warn!(
                seq = d.seq,
                "webhook delivery outcome refused: the lease had passed"
            ),
            Err(e) => {
                error!(error = %e, seq = d.seq, "recording a webhook delivery failed; it will be sent again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address filter itself is `cloudphone_outbound`'s, tested there; here, that
    /// deliveries use it as configured.
    #[tokio::test]
    async fn deliveries_go_only_to_public_addresses_unless_allowed() {
        let config = WebhookConfig::default();
        let out = cloudphone_outbound::Outbound::new(
            config.outbound(),
            cloudphone_client::tls::builder(None).unwrap(),
        )
        .unwrap();
        for url in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost/x",
            "https://169.254.169.254/latest",
            "http://198.18.0.1/x",
            "http://240.0.0.1/x",
            "http://[::127.0.0.1]/x",
            "http://[64:ff9b::7f00:1]/x",
            "http://[2002:7f00:1::1]/x",
            "http://[fec0::1]/x",
        ] {
            assert!(out.check(url).await.is_err(), "{url}");
        }
        // A public address literal needs no lookup.
        assert!(out.check("https://8.8.8.8/hook").await.is_ok());
        assert!(out.check("https://[2606:4700::1111]/hook").await.is_ok());
        let open = WebhookConfig {
            allow_private: true,
            ..WebhookConfig::default()
        }
        .outbound();
        assert!(open.policy.allow_private);
        assert_eq!(open.max_redirects, 0, "a redirect is the receiver's answer");
        assert_eq!(open.total_timeout, config.timeout);
    }

    /// With the defaults: 2 s after the first failure, then 4, 8, ... s; the tenth attempt is
    /// the last.
    #[test]
    fn a_failed_delivery_waits_twice_as_long_each_time() {
        let config = WebhookConfig::default();
        let waits: Vec<Option<u64>> = (1..=10)
            .map(|attempt| retry_delay(&config, attempt).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(64),
                Some(128),
                Some(256),
                Some(512),
                None
            ]
        );
    }

    #[test]
    fn retries_wait_at_most_max_retry_and_stop_after_max_attempts() {
        let config = WebhookConfig {
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(60),
            max_attempts: 40,
            ..WebhookConfig::default()
        };
        let wait = |attempt| retry_delay(&config, attempt);
        assert_eq!(wait(6), Some(Duration::from_secs(32)));
        assert_eq!(wait(7), Some(Duration::from_secs(60)));
        // Far past the doubling's end, still the cap, never an overflow.
        assert_eq!(wait(39), Some(Duration::from_secs(60)));
        assert_eq!(wait(40), None);
        assert_eq!(wait(41), None);
        let once = WebhookConfig {
            max_attempts: 1,
            ..WebhookConfig::default()
        };
        assert_eq!(retry_delay(&once, 1), None);
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_time_and_body() {
        // Checked against Python: hmac.new(b"s3cret", b"1700000000.{}", sha256).hexdigest()
        assert_eq!(
            signature("s3cret", 1_700_000_000, "{}"),
            "t=1700000000,v1=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }
}
