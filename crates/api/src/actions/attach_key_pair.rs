//! AttachKeyPair and DetachKeyPair: a phone has at most one key pair (`InstanceModel.KeyPairId`
//! is one id), so attaching replaces the one it had; attaching also turns authentication on
//! (SetAdbSecure's Status 1: a key attached is a key required). Detaching leaves
//! authentication as it is, so a phone whose key went is closed to unsigned clients rather than
//! opened to everyone. At most 50 phones a call; an unknown phone, or another account's, or an
//! unknown key pair fails the whole call with nothing changed.

use cloudphone_core::ApiError;
use serde_json::{Value, json};

use super::adb_endpoints::instance_ids;
use super::common::{internal, resolve_instances};
use crate::adb::RevocationReason;
use crate::params::Params;
use crate::state::Ctx;

/// The most phones one AttachKeyPair, DetachKeyPair or SetAdbSecure names.
pub const MAX_KEY_INSTANCES: usize = 50;

/// The parameters both actions take.
pub struct KeyPairOnInstances {
    key_pair_id: String,
    instance_ids: Vec<String>,
}

impl KeyPairOnInstances {
    pub fn parse(p: &Params) -> Result<KeyPairOnInstances, ApiError> {
        Ok(KeyPairOnInstances {
            instance_ids: instance_ids(p, MAX_KEY_INSTANCES)?,
            key_pair_id: p.required("KeyPairId")?,
        })
    }
}

pub struct AttachKeyPair(KeyPairOnInstances);

impl AttachKeyPair {
    pub fn parse(p: &Params) -> Result<AttachKeyPair, ApiError> {
        KeyPairOnInstances::parse(p).map(AttachKeyPair)
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let KeyPairOnInstances {
            key_pair_id,
            instance_ids,
        } = self.0;
        resolve_instances(ctx, "InstanceIds", &instance_ids).await?;
        let changed = ctx
            .state
            .store
            .attach_key_pair(ctx.account(), &key_pair_id, &instance_ids, ctx.now_ms)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found("KeyPairId", &key_pair_id))?;
        // Connections made under the old key (or none) are not this key's.
        ctx.state
            .adb_revocations
            .ring(changed, RevocationReason::KeyAttached);
        Ok(json!({
            "Data": {
                "AttachedInstanceIds": instance_ids,
                "FailCount": 0,
                "KeyPairId": key_pair_id,
                "TotalCount": instance_ids.len(),
            }
        }))
    }
}

pub struct DetachKeyPair(KeyPairOnInstances);

impl DetachKeyPair {
    pub fn parse(p: &Params) -> Result<DetachKeyPair, ApiError> {
        KeyPairOnInstances::parse(p).map(DetachKeyPair)
    }

    /// A phone that does not have the key pair is not detached from it: it counts in
    /// `FailCount`, and the others are detached.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let KeyPairOnInstances {
            key_pair_id,
            instance_ids,
        } = self.0;
        resolve_instances(ctx, "InstanceIds", &instance_ids).await?;
        let detached = ctx
            .state
            .store
            .detach_key_pair(ctx.account(), &key_pair_id, &instance_ids, ctx.now_ms)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found("KeyPairId", &key_pair_id))?;
        // In the order asked.
        let detached: Vec<String> = instance_ids
            .iter()
            .filter(|i| detached.contains(i))
            .cloned()
            .collect();
        ctx.state
            .adb_revocations
            .ring(detached.clone(), RevocationReason::KeyDetached);
        Ok(json!({
            "Data": {
                "DetachedInstanceIds": detached,
                "FailCount": instance_ids.len() - detached.len(),
                "KeyPairId": key_pair_id,
                "TotalCount": instance_ids.len(),
            }
        }))
    }
}
