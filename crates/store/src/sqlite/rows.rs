//! Rows decoded by position, borrowed from SQLite's own buffers: a DescribeTasks page is
//! written straight from them ([`super::by_store::describe_tasks_rendered`]), and the engine's
//! claim reads its batches' counters this way.

use cloudphone_core::resources::TaskRef;
use cloudphone_core::{BatchCounts, Level};
use rusqlite::Row;

use crate::sql::conn::{level, parse};
use crate::{Result, StoreError};

/// A task borrowed from its row (valid until the statement steps on), in the columns of
/// [`crate::statements::TASK_COLUMNS`].
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
