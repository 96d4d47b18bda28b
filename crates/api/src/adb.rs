//! The ADB gateway as the API knows it (issue 22): its settings ([`AdbGateway`], from `serve
//! --adb-listen --adb-ports --adb-public-host`), which ListInstanceAdbAttributes reports and
//! StartInstanceAdb allocates ports from; and the in-process signal ([`AdbRevocations`]) that
//! the calls which take access away ring with the phones concerned, so that the gateway of this
//! node drops their live connections at once.
//!
//! The signal is per node. Other nodes learn of a change when the gateway next checks a
//! connection against the store (`AdbStore::adb_endpoint`, on every new connection and, for
//! live ones, periodically); docs/design.md §12 says how they will hear it at once.

use std::net::IpAddr;
use std::sync::Arc;

use cloudphone_store::AdbPorts;
use tokio::sync::broadcast;

/// The gateway's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbGateway {
    /// The address the gateway's ports are opened on.
    pub listen: IpAddr,
    /// The ports phones are given, one each, unique across every node of the store.
    pub ports: AdbPorts,
    /// The host clients reach the gateway at: ListInstanceAdbAttributes' `ExternalIp`.
    pub public_host: String,
}

impl AdbGateway {
    /// The port adbd listens on inside a phone (ListInstanceAdbAttributes' `InternalPort`).
    pub const INTERNAL_PORT: u16 = 5555;

    /// Parses `--adb-ports`: `LOW-HIGH` (inclusive) or one port.
    pub fn parse_ports(s: &str) -> Result<AdbPorts, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("'{p}' is not a port from 1 to 65535"))
        };
        let (low, high) = match s.split_once('-') {
            Some((low, high)) => (port(low)?, port(high)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if low > high {
            return Err(format!("{low}-{high}: the range ends before it starts"));
        }
        Ok(AdbPorts { low, high })
    }

    /// Checks `--adb-public-host`: a host name or an IP address, without scheme or port.
    pub fn check_public_host(host: &str) -> Result<(), String> {
        let ip = host.parse::<IpAddr>().is_ok();
        let name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if ip || name {
            Ok(())
        } else {
            Err(format!(
                "'{host}' is not a host name or an IP address (no scheme, no port)"
            ))
        }
    }
}

/// Why a phone's live ADB connections must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// StopInstanceAdb closed the endpoint.
    AdbStopped,
    /// SetAdbSecure changed whether clients must authenticate.
    SecureChanged,
    /// AttachKeyPair replaced the key (or turned authentication on).
    KeyAttached,
    /// DetachKeyPair took the key away.
    KeyDetached,
    /// DeleteKeyPairs deleted the key (detaching it everywhere).
    KeyDeleted,
    /// StopAndroidInstance was accepted for the phone.
    PhoneStopped,
    /// DeleteAndroidInstanceGroup was accepted for the phone's group.
    PhoneDeleted,
}

impl RevocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::AdbStopped => "AdbStopped",
            RevocationReason::SecureChanged => "SecureChanged",
            RevocationReason::KeyAttached => "KeyAttached",
            RevocationReason::KeyDetached => "KeyDetached",
            RevocationReason::KeyDeleted => "KeyDeleted",
            RevocationReason::PhoneStopped => "PhoneStopped",
            RevocationReason::PhoneDeleted => "PhoneDeleted",
        }
    }
}

/// One ring of the signal: these phones' connections must end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbRevocation {
    pub instance_ids: Arc<[String]>,
    pub reason: RevocationReason,
}

/// The signal: any number of listeners (the gateway), each receiving every ring after it
/// subscribed. A listener that falls more than [`AdbRevocations::CAPACITY`] rings behind gets
/// `RecvError::Lagged` and must check all its connections against the store instead.
#[derive(Clone, Debug)]
pub struct AdbRevocations {
    tx: broadcast::Sender<AdbRevocation>,
}

impl Default for AdbRevocations {
    fn default() -> Self {
        AdbRevocations {
            tx: broadcast::channel(Self::CAPACITY).0,
        }
    }
}

impl AdbRevocations {
    pub const CAPACITY: usize = 1024;

    pub fn subscribe(&self) -> broadcast::Receiver<AdbRevocation> {
        self.tx.subscribe()
    }

    /// Rings for `instance_ids` (nothing for none), and counts them in
    /// `cloudphone_adb_revocations_total{reason}`. Nobody listening is not an error: no gateway
    /// runs on this node, or it has no connection.
    pub fn ring(&self, instance_ids: Vec<String>, reason: RevocationReason) {
        if instance_ids.is_empty() {
            return;
        }
        metrics::counter!("cloudphone_adb_revocations_total", "reason" => reason.as_str())
            .increment(instance_ids.len() as u64);
        let _ = self.tx.send(AdbRevocation {
            instance_ids: instance_ids.into(),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse() {
        let r = |low, high| Ok(AdbPorts { low, high });
        assert_eq!(AdbGateway::parse_ports("20000-20999"), r(20000, 20999));
        assert_eq!(AdbGateway::parse_ports(" 5555 - 5556 "), r(5555, 5556));
        assert_eq!(AdbGateway::parse_ports("7000"), r(7000, 7000));
        for bad in ["", "0-10", "10-5", "1-65536", "a-b", "-", "1-2-3", "20000-"] {
            assert!(AdbGateway::parse_ports(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn public_hosts_are_names_or_addresses() {
        for good in ["adb.example.com", "127.0.0.1", "::1", "gw-1", "a.b-c.d"] {
            assert_eq!(AdbGateway::check_public_host(good), Ok(()), "{good}");
        }
        for bad in ["", "http://x", "x:5555", "a..b", "a b"] {
            assert!(AdbGateway::check_public_host(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn rings_reach_every_listener_and_none_for_nothing() {
        let signal = AdbRevocations::default();
        signal.ring(vec!["acp-0".into()], RevocationReason::AdbStopped);
        let mut one = signal.subscribe();
        let mut two = signal.subscribe();
        signal.ring(Vec::new(), RevocationReason::KeyDetached);
        signal.ring(
            vec!["acp-1".into(), "acp-2".into()],
            RevocationReason::KeyDeleted,
        );
        for rx in [&mut one, &mut two] {
            let got = rx.recv().await.unwrap();
            assert_eq!(&*got.instance_ids, ["acp-1", "acp-2"]);
            assert_eq!(got.reason, RevocationReason::KeyDeleted);
            assert!(rx.try_recv().is_err(), "the empty ring sent nothing");
        }
    }
}
