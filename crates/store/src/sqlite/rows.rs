//! Decoding rows into domain types, and the shared pieces of SQL (column lists, `IN` lists,
//! keyset pages) that the query modules build on. A stored value that does not parse back into
//! its enum is [`StoreError::Corrupt`].

use std::str::FromStr;

use cloudphone_core::resources::{Group, Instance, Task, TaskRef};
use cloudphone_core::{BatchCounts, InstanceStatus, Level};
use rusqlite::Row;

use super::sql::Sql;

use crate::{Cursor, Result, StoreError};

/// Parses a stored enum value (`TaskType`, `TaskStatus`, `InstanceStatus`, ...).
pub(super) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what}: unexpected value {s:?}")))
}

pub(super) fn level(v: i64) -> Result<Level> {
    Level::from_i64(v).ok_or_else(|| StoreError::Corrupt(format!("level: unexpected value {v}")))
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

pub(super) fn task(row: &Row<'_>) -> Result<Task> {
    Ok(task_ref(row)?.to_task())
}

/// A task borrowed from its row (valid until the statement steps on).
pub(super) fn task_ref<'r>(row: &'r Row<'_>) -> Result<TaskRef<'r>> {
    // By position, in the order of TASK_COLUMNS: this decodes every row DescribeTasks returns.
    let text = |n: usize| -> Result<&'r str> { Ok(row.get_ref(n)?.as_str()?) };
    let text_opt = |n: usize| -> Result<Option<&'r str>> { Ok(row.get_ref(n)?.as_str_or_null()?) };
    let level = level(row.get(4)?)?;
    let instance_status = match text_opt(10)? {
        Some(s) if level == Level::Instance => Some(parse("instance status", s)?),
        _ => None,
    };
    let counts = if level == Level::Batch {
        Some(batch_counts_at(row, 18)?)
    } else {
        None
    };
    Ok(TaskRef {
        id: text(0)?,
        account_id: text(1)?,
        invoke_id: text(2)?,
        parent_id: text_opt(3)?,
        level,
        task_type: parse("task type", text(5)?)?,
        status: parse("task status", text(6)?)?,
        resource_id: text(7)?,
        instance_id: text_opt(8)?,
        instance_name: text_opt(9)?,
        instance_status,
        param: text(11)?,
        result: text_opt(12)?,
        error_code: text_opt(13)?,
        error_msg: text_opt(14)?,
        operator: text(15)?,
        start_ms: row.get(16)?,
        finish_ms: row.get(17)?,
        counts,
        attempt: row.get(23)?,
    })
}

/// The five `c_*` counters of a batch row, from column `first` on (waiting, processing,
/// finished, failed, skipped).
pub(super) fn batch_counts_at(row: &Row<'_>, first: usize) -> Result<BatchCounts> {
    let get = |n: usize| -> Result<i64> {
        row.get::<_, Option<i64>>(first + n)?
            .ok_or_else(|| StoreError::Corrupt("batch without counters".into()))
    };
    Ok(BatchCounts {
        waiting: get(0)?,
        processing: get(1)?,
        finished: get(2)?,
        failed: get(3)?,
        skipped: get(4)?,
    })
}

/// Columns of an instance with its group's name. Used with [`INSTANCE_FROM`].
pub(super) const INSTANCE_COLUMNS: &str = "SELECT i.id, i.account_id, i.group_id, \
     g.name AS group_name, g.charge_type AS charge_type, i.name, i.status, i.image_id, i.spec, i.region_id, i.up_bw, \
     i.down_bw, i.created_ms, i.modified_ms";

pub(super) const INSTANCE_FROM: &str =
    " FROM instances i JOIN instance_groups g ON g.id = i.group_id";

pub(super) fn instance(row: &Row<'_>) -> Result<Instance> {
    Ok(Instance {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        group_id: row.get("group_id")?,
        group_name: row.get("group_name")?,
        charge_type: row.get("charge_type")?,
        name: row.get("name")?,
        status: parse::<InstanceStatus>("instance status", row.get_ref("status")?.as_str()?)?,
        image_id: row.get("image_id")?,
        spec: row.get("spec")?,
        region_id: row.get("region_id")?,
        up_bandwidth_limit: row.get("up_bw")?,
        down_bandwidth_limit: row.get("down_bw")?,
        created_ms: row.get("created_ms")?,
        modified_ms: row.get("modified_ms")?,
    })
}

/// Columns of a group (alias `g`).
pub(super) const GROUP_COLUMNS: &str = "g.id, g.account_id, g.name, g.region_id, g.image_id, \
     g.spec, g.charge_type, g.tags, g.created_ms, g.modified_ms, g.deleting";

pub(super) fn group(row: &Row<'_>) -> Result<Group> {
    let tags: String = row.get("tags")?;
    Ok(Group {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        name: row.get("name")?,
        region_id: row.get("region_id")?,
        image_id: row.get("image_id")?,
        spec: row.get("spec")?,
        charge_type: row.get("charge_type")?,
        tags: decode_tags(&tags)?,
        created_ms: row.get("created_ms")?,
        modified_ms: row.get("modified_ms")?,
        deleting: row.get::<_, i64>("deleting")? != 0,
    })
}

/// Tags are stored as a JSON array of `[key, value]` pairs.
pub(super) fn encode_tags(tags: &[(String, String)]) -> String {
    serde_json::to_string(tags).expect("string pairs always serialise")
}

fn decode_tags(s: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("group tags {s:?}: {e}")))
}

/// Appends ` AND <column> IN (?, ?, ...)`; nothing for an empty list (no filter).
pub(super) fn push_in<I, S>(qb: &mut Sql, column: &str, values: I)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut values = values.into_iter().peekable();
    if values.peek().is_none() {
        return;
    }
    qb.push(" AND ").push(column).push(" IN (");
    qb.list(values.map(Into::into)).push(")");
}

/// Appends ` AND instr(<column>, ?) > 0` (a literal substring: `%` and `_` are not wildcards);
/// nothing for `None` or an empty string.
pub(super) fn push_substring(qb: &mut Sql, column: &str, needle: &Option<String>) {
    if let Some(needle) = needle.as_deref().filter(|n| !n.is_empty()) {
        qb.push(" AND instr(")
            .push(column)
            .push(", ")
            .bind(needle)
            .push(") > 0");
    }
}

/// Appends the keyset condition for rows strictly after `after` in the order
/// `(<ms>, <id>) DESC` (or ASC when `ascending`).
pub(super) fn push_after(
    qb: &mut Sql,
    ms: &str,
    id: &str,
    after: &Option<Cursor>,
    ascending: bool,
) {
    if let Some(c) = after {
        let op = if ascending { ">" } else { "<" };
        qb.push(format!(" AND ({ms}, {id}) {op} ("))
            .bind(c.ms)
            .push(", ")
            .bind(&c.id)
            .push(")");
    }
}

/// The order of a keyset listing on `(<ms>, <id>)`, and its limit: one row more than the page
/// so that [`page_of`] can tell whether more follow.
pub(super) fn push_order(qb: &mut Sql, ms: &str, id: &str, ascending: bool, limit: usize) {
    let dir = if ascending { "ASC" } else { "DESC" };
    qb.push(format!(" ORDER BY {ms} {dir}, {id} {dir} LIMIT "))
        .bind(fetch_limit(limit));
}

/// The total of `count` and the rows of `list`, from one read transaction: the total and the
/// page agree.
pub(super) fn total_and_rows<T>(
    conn: &rusqlite::Connection,
    count: &Sql,
    list: &Sql,
    decode: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<(i64, Vec<T>)> {
    super::db::snapshot(conn, |conn| {
        Ok((count.scalar(conn)?, list.rows(conn, decode)?))
    })
}

/// A page asks for at least one row.
pub(super) fn page_size(limit: usize) -> usize {
    limit.max(1)
}

fn fetch_limit(limit: usize) -> i64 {
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
