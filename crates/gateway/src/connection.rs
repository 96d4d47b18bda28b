//! One accepted connection, from its port to its audit entries: the phone behind the port (the
//! store's endpoint: refused at once when there is none, it is stopped, or the phone is not
//! RUNNING), registration among the live connections, the ADB session under the handshake
//! deadline and the idle timeout, the `Connected` entry and the phone's device from its backend
//! once the client is in, and the end entry (capped per account when it never got in).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::session::{
    Config, End, OpenError, ResolvedDevice, SessionError, serve_connection_with,
};
use cloudphone_backend::InstanceRef;
use cloudphone_core::InstanceStatus;
use cloudphone_store::AdbEndpoint;
use tokio::net::TcpStream;
use tracing::{Instrument, debug, field, info, info_span};

use crate::admission::Permit;
use crate::audit::{About, Ended, connected, ended, now_ms};
use crate::auth::KeyAuthorizer;
use crate::device::device_for;
use crate::gateway::Inner;
use crate::registry::Live;
use crate::verdict::{Admitted, verdict};

/// Outcomes of connections that ended without the gateway closing them.
mod outcome {
    pub const HOST_CLOSED: &str = "HostClosed";
    pub const HANDSHAKE_TIMEOUT: &str = "HandshakeTimeout";
    pub const PROTOCOL_ERROR: &str = "ProtocolError";
    /// The backend could not say how to reach the phone, or the phone's adbd is not there.
    pub const PHONE_UNREACHABLE: &str = "PhoneUnreachable";
    pub const IDLE: &str = "Idle";
}

pub(crate) async fn serve(
    inner: Arc<Inner>,
    sock: TcpStream,
    peer: SocketAddr,
    port: u16,
    permit: Permit,
) {
    let span = info_span!("adb_connection", port, %peer, instance_id = field::Empty);
    serve_in_span(inner, sock, peer, port, span.clone())
        .instrument(span)
        .await;
    drop(permit);
}

fn refused(why: &'static str) {
    debug!(why, "adb connection refused");
    metrics::counter!("cloudphone_adb_connections_refused_total", "reason" => why).increment(1);
}

async fn serve_in_span(
    inner: Arc<Inner>,
    sock: TcpStream,
    peer: SocketAddr,
    port: u16,
    span: tracing::Span,
) {
    let epoch = inner.registry.epoch();
    let read = tokio::time::timeout(inner.config.store_timeout, inner.store.adb_endpoint(port));
    let endpoint = match read.await {
        Ok(Ok(Some(e))) => e,
        Ok(Ok(None)) => return refused("NoEndpoint"),
        Ok(Err(e)) => {
            info!(error = %e, "adb connection refused: the store failed");
            return refused("StoreFailed");
        }
        Err(_) => return refused("StoreTimeout"),
    };
    span.record("instance_id", field::display(&endpoint.instance_id));
    if !endpoint.started {
        return refused("EndpointStopped");
    }
    if endpoint.status != InstanceStatus::Running {
        return refused("PhoneNotRunning");
    }
    let _ = sock.set_nodelay(true);
    let live = Arc::new(Live::new(
        inner.registry.next_id(),
        endpoint.instance_id.clone(),
        endpoint.account_id.clone(),
        port,
        endpoint.secure,
    ));
    let registered = inner.registry.register(live.clone());
    metrics::gauge!("cloudphone_adb_connections_open").increment(1.0);
    // A revocation handled between the lookup and the registration did not see this
    // connection: check it now.
    if inner.registry.epoch() != epoch {
        let again = inner.store.adb_endpoint(port).await.ok().flatten();
        if let Some(why) = verdict(admitted(&live), again.as_ref()) {
            live.close(why);
        }
    }
    let stats = if live.closed_for().is_some() {
        Stats::default()
    } else {
        run_session(&inner, &endpoint, &live, sock, peer).await
    };
    drop(registered);
    metrics::gauge!("cloudphone_adb_connections_open").decrement(1.0);
    let outcome = live.closed_for().unwrap_or(stats.outcome);
    metrics::counter!("cloudphone_adb_connections_total", "outcome" => outcome).increment(1);
    info!(
        outcome,
        key_pair_id = live.authorized_by().unwrap_or(""),
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        "adb connection ended"
    );
    let source = peer.to_string();
    let end = ended(
        &about(&live, &source),
        &Ended {
            outcome,
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            streams: stats.streams,
            seconds: live.since.elapsed().as_secs(),
        },
        now_ms(),
    );
    if live.has_got_in() {
        inner.audit.record(end);
    } else {
        inner.audit.record_unauthenticated(end);
    }
}

fn about<'a>(live: &'a Live, source: &'a str) -> About<'a> {
    About {
        connection_id: &live.connection_id,
        account_id: &live.account_id,
        instance_id: &live.instance_id,
        key_pair_id: live.authorized_by(),
        source,
    }
}

pub(crate) fn admitted(live: &Live) -> Admitted<'_> {
    Admitted {
        instance_id: &live.instance_id,
        auth_required: live.auth_required,
        authorized_by: live.authorized_by(),
    }
}

struct Stats {
    outcome: &'static str,
    bytes_in: u64,
    bytes_out: u64,
    streams: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            outcome: outcome::HOST_CLOSED,
            bytes_in: 0,
            bytes_out: 0,
            streams: 0,
        }
    }
}

async fn run_session(
    inner: &Arc<Inner>,
    endpoint: &AdbEndpoint,
    live: &Arc<Live>,
    sock: TcpStream,
    peer: SocketAddr,
) -> Stats {
    // The gateway knows the phone by its endpoint: no name or spec.
    let phone = InstanceRef {
        id: endpoint.instance_id.clone(),
        account_id: endpoint.account_id.clone(),
        name: String::new(),
        image_id: endpoint.image_id.clone(),
        spec: String::new(),
        attempt: None,
        host: endpoint.host.clone(),
        adb_port: endpoint.adb_port,
    };
    let authorizer = KeyAuthorizer::new(inner.clone(), live.clone());
    // The phone is reached only once the client is in (authenticated, when it must be): a
    // client that cannot sign never makes the backend connect a docker phone's adbd.
    let resolve = || async {
        if let Err(why) = authorizer.let_in().await {
            live.close(why);
            return Err(OpenError(format!(
                "access went during the handshake: {why}"
            )));
        }
        live.got_in();
        let source = peer.to_string();
        inner
            .audit
            .record(connected(&about(live, &source), now_ms()));
        let route =
            tokio::time::timeout(inner.config.route_timeout, inner.backend.adb_route(&phone))
                .await
                .map_err(|_| OpenError("the backend did not say how to reach the phone".into()))?
                .map_err(|e| OpenError(format!("the phone cannot be reached: {e}")))?;
        let (banner, device) = device_for(
            route,
            &endpoint.instance_id,
            inner.config.store_timeout,
            live.handle.clone(),
        )
        .await
        .map_err(|e| OpenError(format!("the phone's adbd is not there: {e}")))?;
        Ok(ResolvedDevice::with_banner(Arc::new(device), banner))
    };
    // The banner is the resolved device's; this one is never sent.
    let mut config = Config::new(DeviceBanner::new("cloudphone", "Cloud_Phone", &phone.id));
    config.handshake_timeout = inner.config.handshake_timeout;
    config.max_payload = inner.config.max_payload;
    let session = serve_connection_with(sock, &config, &authorizer, resolve, live.handle.clone());
    let report = tokio::select! {
        r = session => r,
        () = watch_idle(live, inner.config.idle_timeout) => unreachable!("watch_idle never returns"),
    };
    let outcome = match &report.end {
        End::HostClosed | End::Closed => outcome::HOST_CLOSED,
        End::Failed(SessionError::HandshakeTimeout(_)) => outcome::HANDSHAKE_TIMEOUT,
        End::Failed(SessionError::Unavailable(e)) => {
            info!(error = %e, "adb connection dropped");
            outcome::PHONE_UNREACHABLE
        }
        End::Failed(_) => outcome::PROTOCOL_ERROR,
    };
    Stats {
        outcome,
        bytes_in: report.bytes_in,
        bytes_out: report.bytes_out,
        streams: report.streams_opened,
    }
}

/// Closes the connection once no byte has moved either way for `idle` (never for zero);
/// never returns.
async fn watch_idle(live: &Live, idle: Duration) {
    if idle.is_zero() {
        return std::future::pending().await;
    }
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    let mut last = (live.handle.bytes_in(), live.handle.bytes_out());
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let now = (live.handle.bytes_in(), live.handle.bytes_out());
        if now != last {
            last = now;
            quiet_since = tokio::time::Instant::now();
        } else if quiet_since.elapsed() >= idle {
            live.close(outcome::IDLE);
            return std::future::pending().await;
        }
    }
}
