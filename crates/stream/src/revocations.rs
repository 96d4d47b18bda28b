//! The in-process signal that ends live screen sessions at once: `DisconnectAndroidInstance`
//! ends a phone's sessions in the store and rings this with them, and the stream server of
//! this node closes those it holds (close code 4000 `Disconnected`), as `AdbRevocations` does
//! for the ADB gateway.
//!
//! The signal is per node. Other nodes see the sessions ended in the store within a second,
//! through the heartbeat write that returns each session's state.

use std::sync::Arc;

use tokio::sync::broadcast;

/// Why sessions must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// DisconnectAndroidInstance ended them.
    Disconnected,
}

impl RevocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Disconnected => "Disconnected",
        }
    }
}

/// One ring: these sessions, of these phones, must end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRevocation {
    /// The phones named by the call.
    pub instance_ids: Arc<[String]>,
    /// Only this end user's sessions (`None`: every session of the phones).
    pub end_user_id: Option<String>,
    /// The sessions the store ended (on every node): a listener closes those it holds.
    pub session_ids: Arc<[String]>,
    pub reason: RevocationReason,
}

/// The signal: any number of listeners, each receiving every ring after it subscribed. A
/// listener more than [`StreamRevocations::CAPACITY`] rings behind gets `RecvError::Lagged`
/// and must check its sessions against the store instead.
#[derive(Clone, Debug)]
pub struct StreamRevocations {
    tx: broadcast::Sender<StreamRevocation>,
}

impl Default for StreamRevocations {
    fn default() -> Self {
        StreamRevocations {
            tx: broadcast::channel(Self::CAPACITY).0,
        }
    }
}

impl StreamRevocations {
    pub const CAPACITY: usize = 1024;

    pub fn subscribe(&self) -> broadcast::Receiver<StreamRevocation> {
        self.tx.subscribe()
    }

    /// Rings for `instance_ids` (nothing for none), and counts the sessions ended in
    /// `cloudphone_stream_revocations_total{reason}`. Nobody listening is not an error: no
    /// stream server runs on this node, or it holds no session.
    pub fn ring(
        &self,
        instance_ids: Vec<String>,
        end_user_id: Option<String>,
        session_ids: Vec<String>,
        reason: RevocationReason,
    ) {
        if instance_ids.is_empty() {
            return;
        }
        metrics::counter!("cloudphone_stream_revocations_total", "reason" => reason.as_str())
            .increment(session_ids.len() as u64);
        let _ = self.tx.send(StreamRevocation {
            instance_ids: instance_ids.into(),
            end_user_id,
            session_ids: session_ids.into(),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_hear_every_ring_after_they_subscribed() {
        let signal = StreamRevocations::default();
        signal.ring(
            vec!["acp-early".into()],
            None,
            vec![],
            RevocationReason::Disconnected,
        );
        let mut one = signal.subscribe();
        let mut two = signal.clone().subscribe();
        signal.ring(vec![], None, vec![], RevocationReason::Disconnected);
        signal.ring(
            vec!["acp-1".into()],
            Some("alice".into()),
            vec!["ss-1".into()],
            RevocationReason::Disconnected,
        );
        for rx in [&mut one, &mut two] {
            let r = rx.recv().await.unwrap();
            assert_eq!(&*r.instance_ids, ["acp-1".to_string()]);
            assert_eq!(r.end_user_id.as_deref(), Some("alice"));
            assert_eq!(&*r.session_ids, ["ss-1".to_string()]);
            assert_eq!(r.reason.as_str(), "Disconnected");
            assert!(rx.try_recv().is_err(), "the empty ring was not sent");
        }
    }
}
