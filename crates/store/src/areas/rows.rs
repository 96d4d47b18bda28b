//! Decoding rows into domain types, and the column lists the areas select them with. A stored
//! value that does not parse back into its enum is [`StoreError::Corrupt`].

use cloudphone_core::resources::{Group, Instance, Task};
use cloudphone_core::{BatchCounts, InstanceStatus, Level};

use crate::sql::conn::{Row, level, parse};
use crate::{Result, StoreError};

/// Columns of a task as DescribeTasks shows it, with the instance's status read now. Used with
/// [`TASK_FROM`]. (SQLite's rendered pages read them by position: `sqlite::rows::task_ref`.)
pub const TASK_COLUMNS: &str = "SELECT t.id, t.account_id, t.invoke_id, t.parent_id, \
     t.level, t.task_type, t.status, t.resource_id, t.instance_id, t.instance_name, \
     i.status AS instance_status, t.param, t.result, t.error_code, t.error_msg, t.operator, \
     t.start_ms, t.finish_ms, t.c_waiting, t.c_processing, t.c_finished, t.c_failed, \
     t.c_skipped, t.attempt";

/// Tasks, with the instance joined for instance tasks only.
pub const TASK_FROM: &str =
    " FROM tasks t LEFT JOIN instances i ON t.level = 2 AND i.id = t.instance_id";

pub(crate) fn task(row: &dyn Row) -> Result<Task> {
    let level = level(row.int("level")?)?;
    let instance_status = match row.text_opt("instance_status")? {
        Some(s) if level == Level::Instance => Some(parse("instance status", &s)?),
        _ => None,
    };
    let counts = if level == Level::Batch {
        Some(batch_counts(row)?)
    } else {
        None
    };
    Ok(Task {
        id: row.text("id")?,
        account_id: row.text("account_id")?,
        invoke_id: row.text("invoke_id")?,
        parent_id: row.text_opt("parent_id")?,
        level,
        task_type: parse("task type", &row.text("task_type")?)?,
        status: parse("task status", &row.text("status")?)?,
        resource_id: row.text("resource_id")?,
        instance_id: row.text_opt("instance_id")?,
        instance_name: row.text_opt("instance_name")?,
        instance_status,
        param: row.text("param")?,
        result: row.text_opt("result")?,
        error_code: row.text_opt("error_code")?,
        error_msg: row.text_opt("error_msg")?,
        operator: row.text("operator")?,
        start_ms: row.int("start_ms")?,
        finish_ms: row.int_opt("finish_ms")?,
        counts,
        attempt: row.int("attempt")?,
    })
}

/// The `c_*` counters of a batch row.
pub(crate) fn batch_counts(row: &dyn Row) -> Result<BatchCounts> {
    let get = |col: &str| -> Result<i64> {
        row.int_opt(col)?
            .ok_or_else(|| StoreError::Corrupt(format!("batch without counter {col}")))
    };
    Ok(BatchCounts {
        waiting: get("c_waiting")?,
        processing: get("c_processing")?,
        finished: get("c_finished")?,
        failed: get("c_failed")?,
        skipped: get("c_skipped")?,
    })
}

/// Columns of an instance with its group's name. Used with [`INSTANCE_FROM`].
pub(crate) const INSTANCE_COLUMNS: &str = "SELECT i.id, i.account_id, i.group_id, \
     g.name AS group_name, g.charge_type AS charge_type, i.name, i.status, i.image_id, i.spec, \
     i.region_id, i.up_bw, i.down_bw, i.created_ms, i.modified_ms, i.host, \
     (SELECT p.port FROM host_ports p WHERE p.instance_id = i.id AND p.host = i.host) AS adb_port";

pub(crate) const INSTANCE_FROM: &str =
    " FROM instances i JOIN instance_groups g ON g.id = i.group_id";

pub(crate) fn instance(row: &dyn Row) -> Result<Instance> {
    Ok(Instance {
        id: row.text("id")?,
        account_id: row.text("account_id")?,
        group_id: row.text("group_id")?,
        group_name: row.text("group_name")?,
        charge_type: row.text("charge_type")?,
        name: row.text("name")?,
        status: parse::<InstanceStatus>("instance status", &row.text("status")?)?,
        image_id: row.text("image_id")?,
        spec: row.text("spec")?,
        region_id: row.text("region_id")?,
        up_bandwidth_limit: row.int_opt("up_bw")?,
        down_bandwidth_limit: row.int_opt("down_bw")?,
        created_ms: row.int("created_ms")?,
        modified_ms: row.int("modified_ms")?,
        host: row.text_opt("host")?,
        adb_port: row.int_opt("adb_port")?.and_then(|p| u16::try_from(p).ok()),
    })
}

/// Columns of a group (alias `g`).
pub(crate) const GROUP_COLUMNS: &str = "g.id, g.account_id, g.name, g.region_id, g.image_id, \
     g.spec, g.charge_type, g.tags, g.created_ms, g.modified_ms, g.deleting";

pub(crate) fn group(row: &dyn Row) -> Result<Group> {
    Ok(Group {
        id: row.text("id")?,
        account_id: row.text("account_id")?,
        name: row.text("name")?,
        region_id: row.text("region_id")?,
        image_id: row.text("image_id")?,
        spec: row.text("spec")?,
        charge_type: row.text("charge_type")?,
        tags: decode_tags(&row.text("tags")?)?,
        created_ms: row.int("created_ms")?,
        modified_ms: row.int("modified_ms")?,
        deleting: row.flag("deleting")?,
    })
}

/// Tags are stored as a JSON array of `[key, value]` pairs (text on both databases).
pub(crate) fn encode_tags(tags: &[(String, String)]) -> String {
    serde_json::to_string(tags).expect("string pairs always serialise")
}

fn decode_tags(s: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("group tags {s:?}: {e}")))
}
