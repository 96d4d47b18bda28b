//! DisconnectAndroidInstance: ends the live screen sessions of phones and stops the tickets
//! issued for them from opening any more. Without `EndUserId`, every session and ticket of the
//! phones; with it, that end user's only. Both happen in one store write (the phone's or the
//! user's epoch moves on, and the sessions it covers end as `Disconnected`); the call then
//! rings [`StreamRevocations`](cloudphone_stream::StreamRevocations), so that this node's
//! stream server closes its sessions at once, while other nodes see them ended within a
//! second through their heartbeat (docs/design.md §14.2).

use cloudphone_core::ApiError;
use cloudphone_stream::RevocationReason;
use serde_json::{Value, json};

use super::adb_endpoints::instance_ids;
use super::batch_get_acp_connection_ticket::{MAX_TICKET_INSTANCES, end_user_id};
use super::common::{internal, resolve_instances};
use crate::params::Params;
use crate::state::Ctx;

pub struct DisconnectAndroidInstance {
    instance_ids: Vec<String>,
    end_user_id: Option<String>,
}

impl DisconnectAndroidInstance {
    pub fn parse(p: &Params) -> Result<DisconnectAndroidInstance, ApiError> {
        Ok(DisconnectAndroidInstance {
            instance_ids: instance_ids(p, MAX_TICKET_INSTANCES)?,
            end_user_id: end_user_id(p)?,
        })
    }

    /// Any status will do: a phone nobody watches is disconnected all the same, and its tickets
    /// in flight stop opening.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        resolve_instances(ctx, "InstanceIds", &self.instance_ids).await?;
        let ended = ctx
            .state
            .store
            .disconnect_streams(
                ctx.account(),
                &self.instance_ids,
                self.end_user_id.as_deref(),
                ctx.now_ms,
            )
            .await
            .map_err(internal)?;
        ctx.state.stream_revocations.ring(
            self.instance_ids,
            self.end_user_id,
            ended,
            RevocationReason::Disconnected,
        );
        Ok(json!({}))
    }
}
