//! The audit log of mutating calls: who (account, user, key), what (action, the ids it named or
//! made), when, from where, with which request id, and how it ended. Written after the call is
//! answered by its action and before the answer leaves, so an entry is never missing for a call
//! whose answer was sent (a crash in between loses the answer, not just the entry).

use cloudphone_core::resources::AccessKey;
use cloudphone_store::AuditEntry;
use serde_json::Value;

use crate::params::Params;

/// The ids a call names: every parameter whose name (without `.N`) says it holds ids, in
/// parameter-name order.
pub fn named_ids(params: &Params) -> Vec<String> {
    let mut ids = Vec::new();
    for name in params.keys() {
        let base = name.split('.').next().unwrap_or(name);
        let holds_ids = base.ends_with("Id") || base.ends_with("Ids") || base.ends_with("IdList");
        // A name such as `Tag.1.Key` or `NextToken` is not an id; only top-level fields are.
        if holds_ids
            && name.split('.').skip(1).all(|p| p.parse::<u32>().is_ok())
            && let Some(v) = params.get(name)
            && !v.is_empty()
            && !ids.iter().any(|i| i == v)
        {
            ids.push(v.to_string());
        }
    }
    ids
}

/// The ids an answer reports as made: batches, groups, apps, backups, key pairs.
pub fn made_ids(body: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut add = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => ids.push(s.clone()),
        Value::Number(n) => ids.push(n.to_string()),
        _ => {}
    };
    for field in ["TaskId", "AppId", "InvokeId"] {
        add(&body[field]);
    }
    add(&body["Tasks"]["ParentTaskId"]);
    // CreateKeyPair, ImportKeyPair (never the private key: ids only).
    add(&body["Data"]["KeyPairId"]);
    if let Some(groups) = body["InstanceGroupIds"].as_array() {
        groups.iter().for_each(&mut add);
    }
    ids
}

#[allow(clippy::too_many_arguments)]
pub fn entry(
    caller: &AccessKey,
    action: &str,
    mut resource_ids: Vec<String>,
    made: Vec<String>,
    request_id: &str,
    source: &str,
    outcome: String,
    at_ms: i64,
) -> AuditEntry {
    for id in made {
        if !resource_ids.contains(&id) {
            resource_ids.push(id);
        }
    }
    AuditEntry {
        id: 0,
        at_ms,
        account_id: caller.account_id.clone(),
        user_name: caller.user_name.clone(),
        key_id: caller.key_id.clone(),
        action: action.to_string(),
        resource_ids,
        request_id: request_id.to_string(),
        source: source.to_string(),
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_come_from_id_parameters_and_the_answer() {
        let p = Params::from_pairs([
            ("InstanceIds.1", "acp-1"),
            ("InstanceIds.2", "acp-2"),
            ("CommandContent", "ls"),
            ("Tag.1.Key", "env"),
            ("ImageId", "imgc-x"),
            ("InstanceGroupIdList.1", "ag-1"),
        ])
        .unwrap();
        let mut named = named_ids(&p);
        named.sort();
        assert_eq!(named, ["acp-1", "acp-2", "ag-1", "imgc-x"]);
        let made = made_ids(&json!({"TaskId": "t-1", "InvokeId": "r-1", "AppId": 7,
            "InstanceGroupIds": ["ag-2"]}));
        assert_eq!(made, ["t-1", "7", "r-1", "ag-2"]);
        let made = made_ids(&json!({"Data": {"KeyPairId": "kp-1", "PrivateKeyBody": "-----"}}));
        assert_eq!(made, ["kp-1"]);
    }

    /// A connection ticket opens a phone's screen to whoever holds it: it must not reach the
    /// audit log, which more people read than the caller.
    #[test]
    fn tickets_are_not_audited() {
        let p = Params::from_pairs([("InstanceIds.1", "acp-1"), ("EndUserId", "alice")]).unwrap();
        let mut named = named_ids(&p);
        named.sort();
        assert_eq!(named, ["acp-1", "alice"]);
        let answer = json!({"InstanceConnectionModels": [{"InstanceId": "acp-1",
            "TaskId": "cn-hangzhou@7f8c2d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
            "TaskStatus": "FINISHED", "Ticket": "cpt1.secret.tag"}]});
        assert!(made_ids(&answer).is_empty());
    }
}
