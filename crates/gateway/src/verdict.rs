//! Whether a live connection may go on, given its phone's endpoint as the store has it now:
//! the one rule the periodic check, the revocation signal and a connection's own check on its
//! way in all apply. Pure.

use cloudphone_core::InstanceStatus;
use cloudphone_store::AdbEndpoint;

/// Why a connection must end (its audit entry's outcome).
pub mod reason {
    /// No instance has the port any more (the phone is gone, or its port went to another).
    pub const ENDPOINT_GONE: &str = "EndpointGone";
    /// StopInstanceAdb closed the endpoint.
    pub const ENDPOINT_STOPPED: &str = "EndpointStopped";
    /// The phone is not RUNNING (stopping, stopped, rebooting, resetting, deleted...).
    pub const PHONE_NOT_RUNNING: &str = "PhoneNotRunning";
    /// Authentication was turned on, and this connection never authenticated.
    pub const AUTH_REQUIRED: &str = "AuthRequired";
    /// The key that authenticated it is no longer attached (detached, deleted, replaced).
    pub const KEY_REVOKED: &str = "KeyRevoked";
    /// The store could not say for longer than the revocation grace whether it may go on.
    pub const ACCESS_UNCONFIRMED: &str = "AccessUnconfirmed";
}

/// What is known of a live connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Admitted<'a> {
    pub instance_id: &'a str,
    /// It had to authenticate when it came (then it is online only once a key signed).
    pub auth_required: bool,
    /// The key pair that signed, if one did.
    pub authorized_by: Option<&'a str>,
}

/// `None` when the connection may go on; else why it must end.
pub(crate) fn verdict(conn: Admitted<'_>, endpoint: Option<&AdbEndpoint>) -> Option<&'static str> {
    let Some(e) = endpoint.filter(|e| e.instance_id == conn.instance_id) else {
        return Some(reason::ENDPOINT_GONE);
    };
    if !e.started {
        return Some(reason::ENDPOINT_STOPPED);
    }
    if e.status != InstanceStatus::Running {
        return Some(reason::PHONE_NOT_RUNNING);
    }
    match conn.authorized_by {
        // A connection that had to authenticate and has not yet is still in its handshake:
        // it can do nothing, and the handshake deadline ends it.
        None if e.secure && !conn.auth_required => Some(reason::AUTH_REQUIRED),
        Some(key) if e.key_pair_id.as_deref() != Some(key) => Some(reason::KEY_REVOKED),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> AdbEndpoint {
        AdbEndpoint {
            port: 20_000,
            instance_id: "acp-1".into(),
            account_id: "acct".into(),
            status: InstanceStatus::Running,
            image_id: "imgc-x".into(),
            started: true,
            secure: false,
            key_pair_id: None,
            public_keys: vec![],
            host: None,
            adb_port: None,
        }
    }

    fn conn(auth_required: bool, authorized_by: Option<&str>) -> Admitted<'_> {
        Admitted {
            instance_id: "acp-1",
            auth_required,
            authorized_by,
        }
    }

    #[test]
    fn open_endpoints_of_running_phones_keep_their_connections() {
        let e = endpoint();
        assert_eq!(verdict(conn(false, None), Some(&e)), None);
        let secure = AdbEndpoint {
            secure: true,
            key_pair_id: Some("kp-1".into()),
            ..endpoint()
        };
        assert_eq!(verdict(conn(true, Some("kp-1")), Some(&secure)), None);
        // Still in its handshake: it cannot do anything yet.
        assert_eq!(verdict(conn(true, None), Some(&secure)), None);
        // Signed while secure, secure turned off since: its key is still attached.
        let open_with_key = AdbEndpoint {
            key_pair_id: Some("kp-1".into()),
            ..endpoint()
        };
        assert_eq!(
            verdict(conn(true, Some("kp-1")), Some(&open_with_key)),
            None
        );
    }

    #[test]
    fn each_revocation_ends_the_connections_it_concerns() {
        assert_eq!(
            verdict(conn(false, None), None),
            Some(reason::ENDPOINT_GONE)
        );
        let other = AdbEndpoint {
            instance_id: "acp-2".into(),
            ..endpoint()
        };
        assert_eq!(
            verdict(conn(false, None), Some(&other)),
            Some(reason::ENDPOINT_GONE)
        );
        let stopped = AdbEndpoint {
            started: false,
            ..endpoint()
        };
        assert_eq!(
            verdict(conn(false, None), Some(&stopped)),
            Some(reason::ENDPOINT_STOPPED)
        );
        for status in [
            InstanceStatus::Stopping,
            InstanceStatus::Stopped,
            InstanceStatus::Rebooting,
            InstanceStatus::Deleting,
            InstanceStatus::Deleted,
            InstanceStatus::Unavailable,
        ] {
            let e = AdbEndpoint {
                status,
                ..endpoint()
            };
            assert_eq!(
                verdict(conn(false, None), Some(&e)),
                Some(reason::PHONE_NOT_RUNNING)
            );
        }
        let secure = AdbEndpoint {
            secure: true,
            ..endpoint()
        };
        assert_eq!(
            verdict(conn(false, None), Some(&secure)),
            Some(reason::AUTH_REQUIRED)
        );
        // Detached (secure stays on), detached with secure off, replaced by another key.
        for key in [None, Some("kp-2")] {
            for secure in [true, false] {
                let e = AdbEndpoint {
                    secure,
                    key_pair_id: key.map(str::to_string),
                    ..endpoint()
                };
                assert_eq!(
                    verdict(conn(true, Some("kp-1")), Some(&e)),
                    Some(reason::KEY_REVOKED)
                );
            }
        }
    }
}
