//! Decoding rows into domain types, and the shared pieces of SQL (column lists, `IN` lists,
//! keyset pages) that the query modules build on. A stored value that does not parse back into
//! its enum is [`StoreError::Corrupt`], as on SQLite.

use std::str::FromStr;

use cloudphone_core::resources::{Group, Instance, Task};
use cloudphone_core::{BatchCounts, InstanceStatus, Level};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::{Cursor, Result, StoreError};

/// Parses a stored enum value (`TaskType`, `TaskStatus`, `InstanceStatus`, ...).
pub(super) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what}: unexpected value {s:?}")))
}

/// `tasks.level` is a SMALLINT.
pub(super) fn level(v: i16) -> Result<Level> {
    Level::from_i64(i64::from(v))
        .ok_or_else(|| StoreError::Corrupt(format!("level: unexpected value {v}")))
}

/// The value bound for `tasks.level`.
pub(super) fn level_value(level: Level) -> i16 {
    // Levels are 0, 1 and 2.
    i16::try_from(level.as_i64()).unwrap_or(i16::MAX)
}

/// Columns of a task as DescribeTasks shows it, with the instance's status read now. Used with
/// [`TASK_FROM`].
pub(super) const TASK_COLUMNS: &str = "SELECT t.id, t.account_id, t.invoke_id, t.parent_id, \
     t.level, t.task_type, t.status, t.resource_id, t.instance_id, t.instance_name, \
     i.status AS instance_status, t.param, t.result, t.error_code, t.error_msg, t.operator, \
     t.start_ms, t.finish_ms, t.c_waiting, t.c_processing, t.c_finished, t.c_failed, \
     t.c_skipped, t.attempt";

/// Tasks, with the instance joined for instance tasks only.
pub(super) const TASK_FROM: &str =
    " FROM tasks t LEFT JOIN instances i ON t.level = 2 AND i.id = t.instance_id";

pub(super) fn task(row: &PgRow) -> Result<Task> {
    let level = level(row.try_get("level")?)?;
    let instance_status = match row.try_get::<Option<String>, _>("instance_status")? {
        Some(s) if level == Level::Instance => Some(parse("instance status", &s)?),
        _ => None,
    };
    let counts = if level == Level::Batch {
        Some(batch_counts(row)?)
    } else {
        None
    };
    Ok(Task {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        invoke_id: row.try_get("invoke_id")?,
        parent_id: row.try_get("parent_id")?,
        level,
        task_type: parse("task type", row.try_get("task_type")?)?,
        status: parse("task status", row.try_get("status")?)?,
        resource_id: row.try_get("resource_id")?,
        instance_id: row.try_get("instance_id")?,
        instance_name: row.try_get("instance_name")?,
        instance_status,
        param: row.try_get("param")?,
        result: row.try_get("result")?,
        error_code: row.try_get("error_code")?,
        error_msg: row.try_get("error_msg")?,
        operator: row.try_get("operator")?,
        start_ms: row.try_get("start_ms")?,
        finish_ms: row.try_get("finish_ms")?,
        counts,
        attempt: row.try_get("attempt")?,
    })
}

/// The `c_*` counters of a batch row.
pub(super) fn batch_counts(row: &PgRow) -> Result<BatchCounts> {
    let get = |col: &str| -> Result<i64> {
        row.try_get::<Option<i64>, _>(col)?
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
pub(super) const INSTANCE_COLUMNS: &str = "SELECT i.id, i.account_id, i.group_id, \
     g.name AS group_name, g.charge_type AS charge_type, i.name, i.status, i.image_id, i.spec, \
     i.region_id, i.up_bw, i.down_bw, i.created_ms, i.modified_ms";

pub(super) const INSTANCE_FROM: &str =
    " FROM instances i JOIN instance_groups g ON g.id = i.group_id";

pub(super) fn instance(row: &PgRow) -> Result<Instance> {
    Ok(Instance {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        group_id: row.try_get("group_id")?,
        group_name: row.try_get("group_name")?,
        charge_type: row.try_get("charge_type")?,
        name: row.try_get("name")?,
        status: parse::<InstanceStatus>("instance status", row.try_get("status")?)?,
        image_id: row.try_get("image_id")?,
        spec: row.try_get("spec")?,
        region_id: row.try_get("region_id")?,
        up_bandwidth_limit: row.try_get("up_bw")?,
        down_bandwidth_limit: row.try_get("down_bw")?,
        created_ms: row.try_get("created_ms")?,
        modified_ms: row.try_get("modified_ms")?,
    })
}

/// Columns of a group (alias `g`).
pub(super) const GROUP_COLUMNS: &str = "g.id, g.account_id, g.name, g.region_id, g.image_id, \
     g.spec, g.charge_type, g.tags, g.created_ms, g.modified_ms, g.deleting";

pub(super) fn group(row: &PgRow) -> Result<Group> {
    let tags: String = row.try_get("tags")?;
    Ok(Group {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        region_id: row.try_get("region_id")?,
        image_id: row.try_get("image_id")?,
        spec: row.try_get("spec")?,
        charge_type: row.try_get("charge_type")?,
        tags: decode_tags(&tags)?,
        created_ms: row.try_get("created_ms")?,
        modified_ms: row.try_get("modified_ms")?,
        deleting: row.try_get("deleting")?,
    })
}

/// Tags are stored as a JSON array of `[key, value]` pairs (text, as on SQLite; the tag filter
/// casts it to `jsonb`).
pub(super) fn encode_tags(tags: &[(String, String)]) -> String {
    serde_json::to_string(tags).expect("string pairs always serialise")
}

fn decode_tags(s: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("group tags {s:?}: {e}")))
}

/// Appends ` AND <column> = ANY($n)` with the values as one array parameter; nothing for an
/// empty list (no filter).
pub(super) fn push_in<I, S>(qb: &mut QueryBuilder<Postgres>, column: &str, values: I)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let values: Vec<String> = values.into_iter().map(Into::into).collect();
    if values.is_empty() {
        return;
    }
    qb.push(" AND ")
        .push(column)
        .push(" = ANY(")
        .push_bind(values)
        .push(")");
}

/// Appends ` AND strpos(<column>, $n) > 0` (a literal substring: `%` and `_` are not
/// wildcards); nothing for `None` or an empty string.
pub(super) fn push_substring(
    qb: &mut QueryBuilder<Postgres>,
    column: &str,
    needle: &Option<String>,
) {
    if let Some(needle) = needle.as_deref().filter(|n| !n.is_empty()) {
        qb.push(" AND strpos(")
            .push(column)
            .push(", ")
            .push_bind(needle.to_owned())
            .push(") > 0");
    }
}

/// Appends the keyset condition for rows strictly after `after` in the order
/// `(<ms>, <id>) DESC` (or ASC when `ascending`).
pub(super) fn push_after(
    qb: &mut QueryBuilder<Postgres>,
    ms: &str,
    id: &str,
    after: &Option<Cursor>,
    ascending: bool,
) {
    if let Some(c) = after {
        let op = if ascending { ">" } else { "<" };
        qb.push(format_args!(" AND ({ms}, {id}) {op} ("))
            .push_bind(c.ms)
            .push(", ")
            .push_bind(c.id.clone())
            .push(")");
    }
}

/// The order of a keyset listing on `(<ms>, <id>)`, and its limit: one row more than the page
/// so that [`page_of`] can tell whether more follow.
pub(super) fn push_order(
    qb: &mut QueryBuilder<Postgres>,
    ms: &str,
    id: &str,
    ascending: bool,
    limit: usize,
) {
    let dir = if ascending { "ASC" } else { "DESC" };
    qb.push(format_args!(" ORDER BY {ms} {dir}, {id} {dir} LIMIT "))
        .push_bind(fetch_limit(limit));
}

/// A page asks for at least one row.
pub(super) fn page_size(limit: usize) -> usize {
    limit.max(1)
}

pub(super) fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(page_size(limit)).unwrap_or(i64::MAX - 1) + 1
}

/// Cuts the `limit + 1` fetched rows to the page and gives the cursor of its last item when
/// more rows follow.
pub(super) fn page_of<T>(
    mut items: Vec<T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    let limit = page_size(limit);
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(cursor_of);
        (items, next)
    } else {
        (items, None)
    }
}
