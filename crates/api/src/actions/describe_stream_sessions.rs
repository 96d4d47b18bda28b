//! DescribeStreamSessions (an extension): the live screen sessions of the caller's phones,
//! live and recent (ended ones are kept 7 days), newest first, paginated. Who watches, from
//! where, with which `EndUserId` and access key, who controls, and why a session ended.

use cloudphone_core::ApiError;
use cloudphone_core::time::iso;
use cloudphone_store::{StreamRole, StreamSession, StreamSessionFilter};
use serde_json::{Value, json};

use super::common::{Paging, dedup, internal};
use crate::params::Params;
use crate::state::Ctx;

pub struct DescribeStreamSessions {
    instance_ids: Vec<String>,
    /// Only sessions open now.
    live: bool,
    paging: Paging,
}

impl DescribeStreamSessions {
    pub fn parse(p: &Params) -> Result<DescribeStreamSessions, ApiError> {
        let mut instance_ids = dedup(p.list("InstanceIds", 100)?);
        instance_ids.sort();
        Ok(DescribeStreamSessions {
            instance_ids,
            live: p.bool("Live")?.unwrap_or(false),
            paging: Paging::parse(p, 20)?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        // The filter's time moves on between pages; the scope names what stays.
        let scope = format!(
            "DescribeStreamSessions|{}|{:?}|{}",
            ctx.account(),
            self.instance_ids,
            self.live
        );
        let page = self.paging.page(ctx, &scope)?;
        let stale_before = cloudphone_stream::stale_before(ctx.now_ms);
        let filter = StreamSessionFilter {
            account_id: ctx.account().to_string(),
            instance_ids: self.instance_ids,
            live_since: self.live.then_some(stale_before),
        };
        let listing = ctx
            .state
            .store
            .list_stream_sessions(&filter, &page)
            .await
            .map_err(internal)?;
        let sessions: Vec<Value> = listing
            .items
            .iter()
            .map(|s| session_json(s, stale_before))
            .collect();
        let mut body = json!({
            "TotalCount": listing.total,
            "MaxResults": self.paging.max_results,
            "Sessions": sessions,
        });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}

fn session_json(s: &StreamSession, stale_before: i64) -> Value {
    // Stale: its node stopped writing the heartbeat; the reaper will end it as Lost.
    let status = match s.ended_ms {
        Some(_) => "Ended",
        None if s.heartbeat_ms < stale_before => "Stale",
        None => "Live",
    };
    let mut v = json!({
        "SessionId": s.id,
        "InstanceId": s.instance_id,
        "EndUserId": s.end_user_id,
        "AccessKeyId": s.key_id,
        "TaskId": s.task_id,
        "NodeId": s.node_id,
        "Peer": s.peer,
        "Role": match s.role {
            StreamRole::Control => "Control",
            StreamRole::View => "View",
        },
        "Status": status,
        "OpenedTime": iso(s.opened_ms),
        "LastHeartbeatTime": iso(s.heartbeat_ms),
    });
    if let Some(ended) = s.ended_ms {
        v["EndedTime"] = json!(iso(ended));
        v["EndReason"] = json!(s.end_reason.clone().unwrap_or_default());
    }
    v
}
