//! What a gateway is told: where it listens, which ports, and its limits.

use std::net::IpAddr;
use std::time::Duration;

use cloudphone_store::AdbPorts;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The address every port of `ports` is opened on.
    pub listen: IpAddr,
    /// The endpoints' ports: all of them are opened, whichever phones have them now, since a
    /// phone's port is given by the store (on any node) and every node serves every phone.
    pub ports: AdbPorts,
    /// Connections open at once on this node; one more is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address (0: no cap of its own): an IPv4 address, or
    /// an IPv6 /64 (an IPv4-mapped address counts as its IPv4 address).
    pub max_connections_per_ip: usize,
    /// From accept to online (cloudphone-adb's handshake deadline): a client that cannot sign
    /// stays `unauthorized` this long, then is dropped.
    pub handshake_timeout: Duration,
    /// A connection on which no byte moved either way for this long is closed (zero: never).
    pub idle_timeout: Duration,
    /// How often the live connections are checked against the store (the endpoint stopped,
    /// the key detached, authentication turned on, the phone no longer RUNNING), which is how
    /// a change made through another node reaches this one.
    pub recheck_interval: Duration,
    /// How long a live connection may go without its access confirmed by the store (every
    /// check failing: the store down or too slow) before it is closed (`AccessUnconfirmed`).
    /// A store blip shorter than this changes nothing.
    pub revocation_grace: Duration,
    /// How long a store read may take on a connection's way in; the connection is refused
    /// past it.
    pub store_timeout: Duration,
    /// The largest ADB payload announced to clients (cloudphone-adb keeps it within 4 KiB and
    /// 1 MiB). adb 29 has one WRTE in flight per stream and direction, so a stream moves one
    /// payload per round trip: 1 MiB, what adbd 29 announces, moves a pull of 200 MB in half
    /// the round trips of cloudphone-adb's 256 KiB default, for at most 2 MiB buffered per
    /// stream that is sending (docs/design.md §13, bench/README.md).
    pub max_payload: u32,
    /// How long the backend may take to say how to reach a phone (a docker phone's adbd is
    /// connected and made to run as `shell` first).
    pub route_timeout: Duration,
    /// Audit entries waiting to be written at most; one more is dropped (and counted), since
    /// connections never wait for the audit.
    pub audit_queue: usize,
    /// Entries of connections that never got in (a wrong key, garbage, a stalled handshake)
    /// written per account and `unauthenticated_audit_window`; the rest are counted and
    /// summarized in one entry (docs/design.md §13). Connections that got in are never capped.
    pub unauthenticated_audit_limit: u32,
    pub unauthenticated_audit_window: Duration,
}

impl GatewayConfig {
    pub fn new(listen: IpAddr, ports: AdbPorts) -> GatewayConfig {
        GatewayConfig {
            listen,
            ports,
            max_connections: 4096,
            max_connections_per_ip: 256,
            handshake_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(3600),
            recheck_interval: Duration::from_secs(1),
            revocation_grace: Duration::from_secs(30),
            store_timeout: Duration::from_secs(5),
            route_timeout: Duration::from_secs(60),
            max_payload: 1024 * 1024,
            audit_queue: 10_000,
            unauthenticated_audit_limit: 60,
            unauthenticated_audit_window: Duration::from_secs(60),
        }
    }
}
