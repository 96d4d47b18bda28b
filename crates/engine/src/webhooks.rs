//! The webhook sender: posts each queued delivery (a batch that ended, queued by the store in
//! the same transaction) to its URL, signed with the webhook's secret, and retries a failed one
//! with exponential backoff until it is delivered or its attempts are spent. Deliveries are
//! leased, so several nodes share the work and an attempt lost with its node is made again.
//!
//! The receiver checks `X-Cloudphone-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
//! HMAC-SHA256 over `<t>.<body>` with the secret, and may drop a repeat by
//! `X-Cloudphone-Delivery` (a delivery is sent again only when its answer was lost).
//!
//! Receivers must be on public addresses (checked when the webhook is made and again before
//! each POST, the host resolved), unless the operator allows private ones: a tenant cannot
//! make the server post into its own network.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cloudphone_core::time::now_ms;
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

pub struct WebhookSender {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    config: WebhookConfig,
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local,
/// shared (carrier NAT), documentation, unspecified, broadcast or multicast, nor an IPv6 form of
/// one. A webhook may point only at such addresses unless the operator allows private ones.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local())
            }
        },
    }
}

/// The host to resolve for `url` (an IPv6 literal without its brackets) and the port.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed
        .host_str()?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    Some((host, parsed.port_or_known_default().unwrap_or(80)))
}

/// Why `url` may not be posted to: its host resolves to an address that is not public.
pub async fn refused_target(url: &str) -> Option<String> {
    let (host, port) = host_and_port(url)?;
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(found) => found.collect(),
        Err(e) => return Some(format!("the receiver's host could not be resolved: {e}")),
    };
    addrs.iter().find(|a| !is_public(a.ip())).map(|a| {
        format!(
            "the receiver's host resolves to {}, which is not a public address",
            a.ip()
        )
    })
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
    pub fn new(store: Arc<dyn Store>, http: reqwest::Client, config: WebhookConfig) -> Self {
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
        if !self.config.allow_private
            && let Some(why) = refused_target(&d.url).await
        {
            let end = DeliveryEnd::GaveUp {
                status: None,
                error: why,
            };
            if let Err(e) = self
                .store
                .end_delivery(d.seq, d.attempt, &end, now_ms())
                .await
            {
                error!(error = %e, seq = d.seq, "recording a refused webhook delivery failed");
            }
            return;
        }
        let sent_at = now_ms();
        let answer = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header(
                "x-cloudphone-signature",
                signature(&d.secret, sent_at / 1000, &d.body),
            )
            .header("x-cloudphone-delivery", format!("whd-{}", d.seq))
            .header("x-cloudphone-attempt", d.attempt.to_string())
            .timeout(self.config.timeout)
            .body(d.body.clone())
            .send()
            .await;
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
            Ok(r) if r.status().is_success() => DeliveryEnd::Delivered {
                status: i64::from(r.status().as_u16()),
            },
            Ok(r) => {
                let status = r.status();
                failed(
                    Some(i64::from(status.as_u16())),
                    format!("the receiver answered HTTP {status}"),
                )
            }
            Err(e) => failed(None, format!("the receiver could not be reached: {e}")),
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

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn a_url_naming_the_server_s_own_network_is_refused() {
        assert!(refused_target("http://127.0.0.1:8080/x").await.is_some());
        assert!(refused_target("http://[::1]/x").await.is_some());
        assert!(refused_target("http://localhost/x").await.is_some());
        assert!(
            refused_target("https://169.254.169.254/latest")
                .await
                .is_some()
        );
        // A public address literal needs no lookup.
        assert!(refused_target("https://8.8.8.8/hook").await.is_none());
    }

    /// An IPv6 literal is looked up without its brackets (as an address, never by name).
    #[test]
    fn a_receiver_s_host_and_port_come_from_its_url() {
        let hp = |url| host_and_port(url);
        assert_eq!(hp("https://8.8.8.8/hook"), Some(("8.8.8.8".into(), 443)));
        assert_eq!(
            hp("http://[2606:4700::1111]:8080/x"),
            Some(("2606:4700::1111".into(), 8080))
        );
        assert_eq!(hp("http://[::1]/x"), Some(("::1".into(), 80)));
        assert_eq!(
            hp("https://hooks.example.com/a"),
            Some(("hooks.example.com".into(), 443))
        );
        assert_eq!(hp("not a url"), None);
    }

    #[tokio::test]
    async fn a_public_ipv6_receiver_is_accepted() {
        assert!(
            refused_target("https://[2606:4700::1111]/hook")
                .await
                .is_none()
        );
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
