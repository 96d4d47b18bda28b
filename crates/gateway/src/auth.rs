//! Who may use a phone's endpoint. When the endpoint is secure (SetAdbSecure, or a key
//! attached), a client must sign adbd's token with the key of the key pair attached to the
//! phone; the identity is that key pair's id. Nothing else authorizes: a public key the client
//! offers is only logged (as its fingerprint), never trusted, since there is nobody to ask.
//!
//! The attached keys are read from the store when a signature arrives, not when the connection
//! came, so a key detached during a client's handshake is refused at once.

use std::sync::Arc;

use cloudphone_adb::keys::AdbPublicKey;
use cloudphone_adb::proto::handshake::TOKEN_SIZE;
use cloudphone_adb::session::Authorizer;
use cloudphone_core::InstanceStatus;
use tracing::{debug, warn};

use crate::gateway::Inner;
use crate::registry::Live;

pub(crate) struct KeyAuthorizer {
    pub inner: Arc<Inner>,
    pub live: Arc<Live>,
}

impl Authorizer for KeyAuthorizer {
    type Identity = String;

    async fn auth_required(&self) -> bool {
        self.live.auth_required
    }

    async fn verify(&self, token: &[u8; TOKEN_SIZE], signature: &[u8]) -> Option<String> {
        let store = self.inner.store.clone();
        let port = self.live.port;
        let read = tokio::time::timeout(self.inner.config.store_timeout, store.adb_endpoint(port));
        let endpoint = match read.await {
            Ok(Ok(e)) => e?,
            Ok(Err(e)) => {
                warn!(error = %e, "adb signature not checked: the store failed");
                return None;
            }
            Err(_) => {
                warn!("adb signature not checked: the store did not answer");
                return None;
            }
        };
        if endpoint.instance_id != self.live.instance_id
            || !endpoint.started
            || endpoint.status != InstanceStatus::Running
        {
            return None;
        }
        let key_pair_id = endpoint.key_pair_id?;
        let signed = endpoint.public_keys.iter().any(|text| {
            AdbPublicKey::parse(text).is_ok_and(|key| key.verify_auth(token, signature))
        });
        if !signed {
            return None;
        }
        self.live.authorized(key_pair_id.clone());
        Some(key_pair_id)
    }

    async fn public_key_offered(&self, key: &[u8]) {
        let text = String::from_utf8_lossy(key);
        match AdbPublicKey::parse(&text) {
            Ok(k) => {
                debug!(fingerprint = %k.fingerprint(), "adb client offered a key that is not attached")
            }
            Err(e) => debug!(error = %e, "adb client offered an unreadable key"),
        }
    }
}
