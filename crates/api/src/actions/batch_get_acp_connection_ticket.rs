//! BatchGetAcpConnectionTicket: a short-lived signed ticket per phone that opens that phone's
//! live screen (`<server>/console/view/<InstanceId>#t=<Ticket>`, or the WebSocket
//! `/streams/<InstanceId>`), for the caller's account, the phone and the `EndUserId` given.
//!
//! The vendor makes tickets asynchronously and lets callers poll with `InstanceTasks`; here a
//! ticket is made within the call, so every answer is `FINISHED` at once (or `FAILED` for a
//! phone that is not RUNNING), and a poll gets the same shape with a fresh ticket under the
//! TaskId it names. Nothing is stored: a ticket is checked by its signature, its expiry and the
//! phone's epochs when a session opens (docs/design.md §14.1). Tickets appear in the answer
//! only: never in a log line, nor in the audit entry (whose `made` ids are read from fields
//! this answer does not have).

use cloudphone_core::resources::Instance;
use cloudphone_core::{ApiError, InstanceStatus};
use cloudphone_stream::{Claims, Epochs};
use serde_json::{Value, json};

use super::common::{dedup, group_members, internal, resolve_instances};
use crate::params::Params;
use crate::state::Ctx;

/// The most phones one call names (InstanceIds, InstanceTasks, or a group's phones).
pub const MAX_TICKET_INSTANCES: usize = 100;

/// The longest `EndUserId`.
const MAX_END_USER_ID: usize = 64;

/// `EndUserId`, if given: at most 64 characters of `A-Z a-z 0-9 @ . _ : -` (an email address,
/// a user name, a numeric id). It is written into tickets and sessions, and `*` stands for
/// every user in the store, so nothing else is taken.
pub fn end_user_id(p: &Params) -> Result<Option<String>, ApiError> {
    let Some(id) = p.string("EndUserId") else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "@._:-".contains(c);
    if id.chars().count() > MAX_END_USER_ID || !id.chars().all(allowed) {
        return Err(ApiError::invalid(
            "EndUserId",
            format!(
                "must be at most {MAX_END_USER_ID} characters of A-Z, a-z, 0-9, '@', '.', '_', \
                 ':' and '-'."
            ),
        ));
    }
    Ok(Some(id))
}

/// Which phones the call asks tickets for.
enum Which {
    /// `InstanceIds`, all in `InstanceGroupId` when it is given too.
    Ids {
        ids: Vec<String>,
        group: Option<String>,
    },
    /// `InstanceGroupId` alone: the group's phones.
    Group(String),
    /// `InstanceTasks`: a poll of earlier answers, (instance id, task id) in the order given.
    Tasks(Vec<(String, String)>),
}

pub struct BatchGetAcpConnectionTicket {
    which: Which,
    end_user_id: String,
}

impl BatchGetAcpConnectionTicket {
    pub fn parse(p: &Params) -> Result<BatchGetAcpConnectionTicket, ApiError> {
        let ids = dedup(p.list("InstanceIds", MAX_TICKET_INSTANCES)?);
        let group = p.string("InstanceGroupId");
        let tasks = p.object_list(
            "InstanceTasks",
            &["InstanceId", "TaskId"],
            MAX_TICKET_INSTANCES,
        )?;
        // Accepted as the SDK sends them, and not used: there is one way to connect here (the
        // WebSocket of the server's own port), so neither a mode nor ports choose anything.
        p.list("Ports", MAX_TICKET_INSTANCES)?;
        let end_user_id = end_user_id(p)?.unwrap_or_default();
        let which = if !tasks.is_empty() {
            if !ids.is_empty() || group.is_some() {
                return Err(ApiError::invalid(
                    "InstanceTasks",
                    "polls the tasks of an earlier call: send it without InstanceIds and \
                     InstanceGroupId.",
                ));
            }
            let mut polled = Vec::with_capacity(tasks.len());
            for mut item in tasks {
                let instance = item
                    .remove("InstanceId")
                    .ok_or_else(|| ApiError::missing("InstanceTasks.InstanceId"))?;
                let task = item
                    .remove("TaskId")
                    .ok_or_else(|| ApiError::missing("InstanceTasks.TaskId"))?;
                if task_region(&task).is_none() {
                    return Err(bad_task_id(&task));
                }
                polled.push((instance, task));
            }
            Which::Tasks(polled)
        } else if !ids.is_empty() {
            Which::Ids { ids, group }
        } else if let Some(group) = group {
            Which::Group(group)
        } else {
            return Err(ApiError::missing("InstanceIds"));
        };
        Ok(BatchGetAcpConnectionTicket { which, end_user_id })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let asked = self.phones(ctx).await?;
        let mut unique: Vec<String> = asked.iter().map(|(i, _)| i.id.clone()).collect();
        unique = dedup(unique);
        let epochs = ctx
            .state
            .store
            .stream_epochs(&unique, &self.end_user_id)
            .await
            .map_err(internal)?;
        let epochs: std::collections::HashMap<String, Epochs> = epochs
            .into_iter()
            .map(|(id, e)| {
                let e = Epochs {
                    phone: e.phone,
                    user: e.user,
                };
                (id, e)
            })
            .collect();
        let ttl_ms = i64::try_from(ctx.state.ticket_ttl.as_millis()).unwrap_or(i64::MAX);
        let models: Vec<Value> = asked
            .into_iter()
            .map(|(instance, task_id)| {
                if instance.status != InstanceStatus::Running {
                    return json!({
                        "InstanceId": instance.id,
                        "TaskId": task_id,
                        "TaskStatus": "FAILED",
                        "ErrorCode": "InstanceNotRunning",
                    });
                }
                let claims = Claims {
                    account_id: ctx.account().to_string(),
                    instance_id: instance.id.clone(),
                    end_user_id: self.end_user_id.clone(),
                    key_id: ctx.caller.key_id.clone(),
                    epochs: epochs.get(&instance.id).copied().unwrap_or_default(),
                    task_id: task_id.clone(),
                    iat: ctx.now_ms,
                    exp: ctx.now_ms.saturating_add(ttl_ms),
                };
                json!({
                    "InstanceId": instance.id,
                    "TaskId": task_id,
                    "TaskStatus": "FINISHED",
                    "Ticket": ctx.state.tickets.issue(&claims),
                })
            })
            .collect();
        Ok(json!({ "InstanceConnectionModels": models }))
    }

    /// The phones asked for, each with its TaskId (new, or the one polled), in the order of the
    /// call. An unknown phone, or another account's, fails the whole call.
    async fn phones(&self, ctx: &Ctx<'_>) -> Result<Vec<(Instance, String)>, ApiError> {
        let new_task = |i: Instance| {
            let task = format!("{}@{}", ctx.state.region, uuid::Uuid::new_v4());
            (i, task)
        };
        match &self.which {
            Which::Ids { ids, group } => {
                let instances = resolve_instances(ctx, "InstanceIds", ids).await?;
                if let Some(group) = group {
                    in_group(ctx, group).await?;
                    if let Some(outside) = instances.iter().find(|i| &i.group_id != group) {
                        return Err(ApiError::invalid(
                            "InstanceIds",
                            format!("{} is not in group {group}.", outside.id),
                        ));
                    }
                }
                Ok(instances.into_iter().map(new_task).collect())
            }
            Which::Group(group) => {
                let members = in_group(ctx, group).await?;
                if members.len() > MAX_TICKET_INSTANCES {
                    return Err(ApiError::invalid(
                        "InstanceGroupId",
                        format!(
                            "the group has {} phones and a call takes at most \
                             {MAX_TICKET_INSTANCES}: name them with InstanceIds.",
                            members.len()
                        ),
                    ));
                }
                Ok(members.into_iter().map(new_task).collect())
            }
            Which::Tasks(polled) => {
                if let Some((_, task)) = polled
                    .iter()
                    .find(|(_, t)| task_region(t) != Some(ctx.state.region.as_str()))
                {
                    return Err(bad_task_id(task));
                }
                let ids = dedup(polled.iter().map(|(i, _)| i.clone()).collect());
                let found = resolve_instances(ctx, "InstanceTasks.InstanceId", &ids).await?;
                let by_id: std::collections::HashMap<&str, &Instance> =
                    found.iter().map(|i| (i.id.as_str(), i)).collect();
                Ok(polled
                    .iter()
                    .map(|(id, task)| ((*by_id[id.as_str()]).clone(), task.clone()))
                    .collect())
            }
        }
    }
}

/// The phones (not DELETED) of the caller's group `group`; a group that is unknown, another
/// account's, or without phones is not found.
async fn in_group(ctx: &Ctx<'_>, group: &str) -> Result<Vec<Instance>, ApiError> {
    let members = group_members(ctx, &[group.to_string()]).await?;
    if members.is_empty() {
        return Err(ApiError::not_found("InstanceGroupId", group));
    }
    Ok(members)
}

/// The region of a TaskId `<region>@<uuid>`, if it has that shape.
fn task_region(task_id: &str) -> Option<&str> {
    let (region, id) = task_id.split_once('@')?;
    let region_ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    // Hyphenated, as this server writes them.
    let id_ok = id.len() == 36 && uuid::Uuid::try_parse(id).is_ok();
    (region_ok && id_ok).then_some(region)
}

fn bad_task_id(task_id: &str) -> ApiError {
    let shown: String = task_id.chars().take(80).collect();
    ApiError::invalid(
        "InstanceTasks.TaskId",
        format!(
            "'{shown}' is not a TaskId this server gave: they are <region>@<uuid>, from an \
             earlier BatchGetAcpConnectionTicket of this region."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn code(pairs: &[(&str, &str)]) -> String {
        match BatchGetAcpConnectionTicket::parse(&params(pairs)) {
            Ok(_) => "ok".into(),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn task_ids_are_region_at_uuid() {
        let uuid = "7f8c2d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f";
        assert_eq!(
            task_region(&format!("cn-hangzhou@{uuid}")),
            Some("cn-hangzhou")
        );
        for bad in [
            "",
            "cn-hangzhou",
            &format!("@{uuid}"),
            "cn-hangzhou@not-a-uuid",
            "cn-hangzhou@7f8c2d4e1a2b4c3d9e8f0a1b2c3d4e5f",
            &format!("CN@{uuid}"),
            &format!("cn hangzhou@{uuid}"),
        ] {
            assert_eq!(task_region(bad), None, "{bad}");
        }
    }

    #[test]
    fn which_phones_and_what_is_refused() {
        let uuid = "7f8c2d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f";
        let task = format!("cn-hangzhou@{uuid}");
        assert_eq!(code(&[]), "MissingParameter.InstanceIds");
        assert_eq!(code(&[("InstanceIds.1", "acp-1")]), "ok");
        assert_eq!(code(&[("InstanceGroupId", "ag-1")]), "ok");
        assert_eq!(
            code(&[
                ("InstanceTasks.1.InstanceId", "acp-1"),
                ("InstanceTasks.1.TaskId", &task)
            ]),
            "ok"
        );
        assert_eq!(
            code(&[("InstanceTasks.1.InstanceId", "acp-1")]),
            "MissingParameter.InstanceTasks.TaskId"
        );
        assert_eq!(
            code(&[("InstanceTasks.1.TaskId", &task)]),
            "MissingParameter.InstanceTasks.InstanceId"
        );
        assert_eq!(
            code(&[
                ("InstanceTasks.1.InstanceId", "acp-1"),
                ("InstanceTasks.1.TaskId", "t-1")
            ]),
            "InvalidParameter.InstanceTasks.TaskId"
        );
        assert_eq!(
            code(&[
                ("InstanceIds.1", "acp-1"),
                ("InstanceTasks.1.InstanceId", "acp-1"),
                ("InstanceTasks.1.TaskId", &task)
            ]),
            "InvalidParameter.InstanceTasks"
        );
        let many: Vec<(String, String)> = (1..=101)
            .map(|n| (format!("InstanceIds.{n}"), format!("acp-{n}")))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(code(&many), "InvalidParameter.InstanceIds");
        assert_eq!(code(&many[..100]), "ok");
        // Ports and ConnectionMode are taken, not used; a bare Ports is the wrong encoding.
        assert_eq!(
            code(&[
                ("InstanceIds.1", "acp-1"),
                ("Ports.1", "8080"),
                ("ConnectionMode", "custom")
            ]),
            "ok"
        );
        assert_eq!(
            code(&[("InstanceIds.1", "acp-1"), ("Ports", "8080")]),
            "InvalidParameter.Ports"
        );
    }

    #[test]
    fn end_user_ids_are_short_and_plain() {
        let ok = |id: &str| end_user_id(&params(&[("EndUserId", id)]));
        assert_eq!(
            ok("alice@example.com").unwrap().as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(ok("u:1_2-3").unwrap().as_deref(), Some("u:1_2-3"));
        assert_eq!(ok(&"a".repeat(64)).unwrap().map(|s| s.len()), Some(64));
        for bad in ["*", "a b", "a/b", "é", "<x>", &"a".repeat(65)] {
            assert_eq!(
                ok(bad).unwrap_err().code(),
                "InvalidParameter.EndUserId",
                "{bad}"
            );
        }
        assert_eq!(end_user_id(&params(&[])).unwrap(), None);
    }
}
