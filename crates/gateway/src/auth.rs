//! Who may use a phone's endpoint. When the endpoint is secure (SetAdbSecure, or a key
//! attached), a client must sign adbd's token with the key of the key pair attached to the
//! phone; the identity is that key pair's id. Nothing else authorizes: a public key the client
//! offers is only logged (as its fingerprint), never trusted, since there is nobody to ask.
//!
//! The attached keys are read from the store once per connection, when its first signature
//! arrives ([`Authorizer::keys_for_connection`]): the phone must still be RUNNING with its
//! endpoint started, and only the keys of the key pair attached then are listed; the session
//! checks that signature and the connection's later ones against the list itself. **Why** once:
//! adb signs with each of its keys in turn and a client may send a signature per attempt, so a
//! read per signature let one client make the store read up to `max_auth_attempts` times per
//! connection; a read per connection is what an accepted connection costs anyway.
//!
//! A key detached (or access taken away otherwise) after that read is not missed: once the
//! client is in, the connection is registered as signed by the key pair listed
//! ([`KeyAuthorizer::let_in`], before our CNXN and so before any stream), and the revocation
//! checks ([`crate::recheck`], by the rule of [`crate::verdict`]) end it as `KeyRevoked`: the
//! API's signal on this node, the periodic check from any node within a second, and, when a
//! revocation was handled between the read and the client getting in (the registry's epoch
//! moved), a check of its own before it is served.

use std::sync::{Arc, OnceLock};

use cloudphone_adb::keys::AdbPublicKey;
use cloudphone_adb::proto::handshake::TOKEN_SIZE;
use cloudphone_adb::session::Authorizer;
use cloudphone_core::InstanceStatus;
use tracing::{debug, warn};

use crate::gateway::Inner;
use crate::registry::Live;
use crate::verdict::verdict;

pub(crate) struct KeyAuthorizer {
    pub inner: Arc<Inner>,
    pub live: Arc<Live>,
    /// The key pair whose keys were listed, with the revocation epoch before they were read.
    listed: OnceLock<(String, u64)>,
}

impl KeyAuthorizer {
    pub(crate) fn new(inner: Arc<Inner>, live: Arc<Live>) -> KeyAuthorizer {
        KeyAuthorizer {
            inner,
            live,
            listed: OnceLock::new(),
        }
    }

    /// The client is in: a connection that had to sign is recorded as signed by the key pair
    /// listed (the only keys it could have signed with), and judged again if a revocation was
    /// handled since they were read. `Err` with the reason it may not go on.
    pub(crate) async fn let_in(&self) -> Result<(), &'static str> {
        if !self.live.auth_required {
            return Ok(());
        }
        // Online with authentication required means a listed key signed.
        let Some((key_pair_id, epoch)) = self.listed.get() else {
            return Err(crate::verdict::reason::AUTH_REQUIRED);
        };
        self.live.authorized(key_pair_id.clone());
        if self.inner.registry.epoch() == *epoch {
            return Ok(());
        }
        let again = self.inner.store.adb_endpoint(self.live.port).await;
        let endpoint = again.ok().flatten();
        match verdict(crate::connection::admitted(&self.live), endpoint.as_ref()) {
            None => Ok(()),
            Some(why) => Err(why),
        }
    }
}

impl Authorizer for KeyAuthorizer {
    type Identity = String;

    async fn auth_required(&self) -> bool {
        self.live.auth_required
    }

    /// Never called: [`KeyAuthorizer::keys_for_connection`] always lists the keys.
    async fn verify(&self, _token: &[u8; TOKEN_SIZE], _signature: &[u8]) -> Option<String> {
        None
    }

    async fn keys_for_connection(&self) -> Option<Vec<(AdbPublicKey, String)>> {
        let epoch = self.inner.registry.epoch();
        let port = self.live.port;
        let read = tokio::time::timeout(
            self.inner.config.store_timeout,
            self.inner.store.adb_endpoint(port),
        );
        // An empty list refuses every signature of this connection; the client retries with a
        // connection of its own.
        let endpoint = match read.await {
            Ok(Ok(Some(e))) => e,
            Ok(Ok(None)) => return Some(Vec::new()),
            Ok(Err(e)) => {
                warn!(error = %e, "adb signatures not checked: the store failed");
                return Some(Vec::new());
            }
            Err(_) => {
                warn!("adb signatures not checked: the store did not answer");
                return Some(Vec::new());
            }
        };
        if endpoint.instance_id != self.live.instance_id
            || !endpoint.started
            || endpoint.status != InstanceStatus::Running
        {
            return Some(Vec::new());
        }
        let Some(key_pair_id) = endpoint.key_pair_id else {
            return Some(Vec::new());
        };
        let keys = endpoint
            .public_keys
            .iter()
            .filter_map(|text| match AdbPublicKey::parse(text) {
                Ok(key) => Some((key, key_pair_id.clone())),
                Err(e) => {
                    warn!(error = %e, key_pair_id, "an attached adb key cannot be read");
                    None
                }
            })
            .collect();
        let _ = self.listed.set((key_pair_id, epoch));
        Some(keys)
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
