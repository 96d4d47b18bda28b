//! The read path: `DescribeTasks` over HTTP, signed, one keep-alive connection, sequential
//! calls, for each query shape; and, as the limit, the same statements the store runs on the
//! same database file, run in this process on a read-only SQLite connection (rusqlite: no
//! thread hop, every column of every row read), with the same ids: the total (a `COUNT(*)`, or
//! for a filter by level, type and status only, the sum of the `task_counts` counters) and the
//! page, in one read transaction, same `ORDER BY`, `LIMIT` and keyset.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags, params_from_iter};
use serde_json::Value;

use super::load::{ACCOUNT, Dataset, public_types};
use super::report::Samples;
use cloudphone_client::{Client, params, push_list};
use cloudphone_core::Level;
use cloudphone_store::sql::{Dialect, Sql};
use cloudphone_store::statements::describe_statements;
use cloudphone_store::{Cursor, Page, TaskFilter};

/// The query shapes of the issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    InvokeId,
    ParentTaskId,
    InstanceId,
    Processing,
    TypeLevel1,
    NoFilter,
    DeepPaging,
}

impl Shape {
    pub const ALL: [Shape; 7] = [
        Shape::InvokeId,
        Shape::ParentTaskId,
        Shape::InstanceId,
        Shape::Processing,
        Shape::TypeLevel1,
        Shape::NoFilter,
        Shape::DeepPaging,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::InvokeId => "by InvokeId",
            Shape::ParentTaskId => "by ParentTaskId",
            Shape::InstanceId => "by InstanceId",
            Shape::Processing => "TaskStatuses=[Processing]",
            Shape::TypeLevel1 => "TaskType + Level=1",
            Shape::NoFilter => "no filter",
            Shape::DeepPaging => "NextToken, pages 1-50",
        }
    }
}

/// One DescribeTasks query: its filters as the API takes them and as the store's SQL has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub invoke_id: Option<String>,
    pub parent_id: Option<String>,
    pub instance_id: Option<String>,
    pub statuses: Vec<&'static str>,
    pub task_type: Option<&'static str>,
    pub level: Option<i64>,
}

impl Query {
    /// A query of `shape` with ids picked at random from the loaded data.
    pub fn pick(shape: Shape, data: &mut Dataset) -> Query {
        use rand::Rng;
        match shape {
            Shape::InvokeId => Query {
                invoke_id: Some(data.random_batch().invoke_id.clone()),
                ..Query::default()
            },
            Shape::ParentTaskId => Query {
                parent_id: Some(data.random_batch().id.clone()),
                ..Query::default()
            },
            Shape::InstanceId => Query {
                instance_id: Some(data.random_phone().id.clone()),
                ..Query::default()
            },
            Shape::Processing => Query {
                statuses: vec!["Processing"],
                ..Query::default()
            },
            Shape::TypeLevel1 => {
                let types = public_types();
                let t = types[data.rng().random_range(0..types.len())];
                Query {
                    task_type: Some(t.as_str()),
                    level: Some(1),
                    ..Query::default()
                }
            }
            Shape::NoFilter | Shape::DeepPaging => Query::default(),
        }
    }

    /// The API parameters.
    pub fn params(&self, page_size: usize, next_token: Option<&str>) -> Vec<(String, String)> {
        let mut p = params(&[("MaxResults", &page_size.to_string())]);
        if let Some(v) = &self.invoke_id {
            p.push(("InvokeId".into(), v.clone()));
        }
        if let Some(v) = &self.parent_id {
            p.push(("ParentTaskId".into(), v.clone()));
        }
        if let Some(v) = &self.instance_id {
            p.push(("InstanceId".into(), v.clone()));
        }
        let statuses: Vec<String> = self.statuses.iter().map(|s| s.to_string()).collect();
        push_list(&mut p, "TaskStatuses", &statuses);
        if let Some(v) = self.task_type {
            p.push(("TaskType".into(), v.to_string()));
        }
        if let Some(v) = self.level {
            p.push(("Level".into(), v.to_string()));
        }
        if let Some(t) = next_token {
            p.push(("NextToken".into(), t.to_string()));
        }
        p
    }

    /// The store's filter for these parameters, as DescribeTasks builds it.
    pub fn filter(&self) -> TaskFilter {
        TaskFilter {
            account_id: ACCOUNT.to_string(),
            invoke_id: self.invoke_id.clone(),
            parent_task_id: self.parent_id.clone(),
            instance_id: self.instance_id.clone(),
            statuses: self
                .statuses
                .iter()
                .map(|s| s.parse().expect("a task status"))
                .collect(),
            task_types: self
                .task_type
                .iter()
                .map(|t| t.parse().expect("a task type"))
                .collect(),
            level: self.level.map(|l| Level::from_i64(l).expect("a level")),
            ..TaskFilter::default()
        }
    }
}

/// The store's own statements of one page of `q` (`cloudphone_store::statements`): its total
/// (a `COUNT(*)`, or for a filter by level, type and status only, the sum of the `task_counts`
/// counters) and its rows, one more than the page, after `after` when given.
pub fn statements(q: &Query, after: Option<&(i64, String)>, page_size: usize) -> (Sql, Sql) {
    let page = Page {
        after: after.map(|(ms, id)| Cursor {
            ms: *ms,
            id: id.clone(),
        }),
        limit: page_size,
    };
    describe_statements(Dialect::Sqlite, &q.filter(), &page)
}

/// A read-only connection on the server's database file, with the store's page cache size.
/// Behind a mutex only so that the async measurement can hold it across its awaits.
pub struct SqlLimit(std::sync::Mutex<Connection>);

impl SqlLimit {
    pub fn open(db: &Path) -> anyhow::Result<SqlLimit> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(db, flags)
            .with_context(|| format!("opening {} read-only", db.display()))?;
        // The store's reader connections have 32 MiB each (crates/store/src/sqlite/db.rs).
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        conn.set_prepared_statement_cache_capacity(64);
        // As the store's connections plan (crates/store/src/sqlite/db.rs, `connect`).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(SqlLimit(std::sync::Mutex::new(conn)))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One page: the total and the page's rows (every column read), in one read transaction,
    /// as the store reads them.
    pub fn page(
        &self,
        q: &Query,
        after: Option<&(i64, String)>,
        page_size: usize,
    ) -> anyhow::Result<SqlPage> {
        let (count, list) = statements(q, after, page_size);
        let conn = self.conn();
        conn.execute_batch("BEGIN")?;
        let total: i64 = conn
            .prepare_cached(count.text())?
            .query_row(params_from_iter(count.args()), |r| r.get(0))?;
        let mut stmt = conn.prepare_cached(list.text())?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(list.args()))?;
        let mut fetched = 0usize;
        let mut bytes = 0usize;
        let mut last: Option<(i64, String)> = None;
        while let Some(row) = rows.next()? {
            fetched += 1;
            for c in 0..columns {
                bytes += match row.get_ref(c)? {
                    rusqlite::types::ValueRef::Text(t) => t.len(),
                    _ => 8,
                };
            }
            if fetched == page_size {
                last = Some((row.get("start_ms")?, row.get("id")?));
            }
        }
        drop(rows);
        drop(stmt);
        conn.execute_batch("COMMIT")?;
        std::hint::black_box(bytes);
        let next = if fetched > page_size { last } else { None };
        Ok(SqlPage { total, next })
    }

    /// `EXPLAIN QUERY PLAN` of the count, the first page and a later page of `q`.
    pub fn query_plan(&self, q: &Query, page_size: usize) -> anyhow::Result<String> {
        const EXPLAIN: &str = "EXPLAIN QUERY PLAN ";
        let after = (i64::MAX, "t-zzzzzzzzzzzzzzzz".to_string());
        let mut out = String::new();
        let conn = self.conn();
        let (count, first) = statements(q, None, page_size);
        let (_, next) = statements(q, Some(&after), page_size);
        for (label, st) in [("count", count), ("page", first), ("next page", next)] {
            out.push_str(label);
            out.push_str(":\n");
            let mut stmt = conn.prepare(&format!("{EXPLAIN}{}", st.text()))?;
            let details = stmt.query_map(params_from_iter(st.args()), |r| {
                r.get::<_, String>("detail")
            })?;
            for detail in details {
                out.push_str("    ");
                out.push_str(&detail?);
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// The limit of a wrk run: `queries` (the run's own, in its order) answered by the store's SQL
/// alone on `threads` threads, each with its own read-only connection as the server's readers
/// have, for `seconds`, each thread cycling through its share. Returns pages per second.
pub fn sql_rate(
    db: &Path,
    queries: &[Query],
    page_size: usize,
    threads: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let done = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let workers: Vec<_> = (0..threads)
            .map(|n| {
                scope.spawn(move || -> anyhow::Result<u64> {
                    let limit = SqlLimit::open(db)?;
                    let mine: Vec<&Query> = queries.iter().skip(n).step_by(threads).collect();
                    let mut pages = 0u64;
                    for q in mine.iter().cycle() {
                        if Instant::now() >= deadline {
                            break;
                        }
                        std::hint::black_box(limit.page(q, None, page_size)?);
                        pages += 1;
                    }
                    Ok(pages)
                })
            })
            .collect();
        let mut total = 0;
        for w in workers {
            total += w
                .join()
                .map_err(|_| anyhow::anyhow!("an SQL thread panicked"))??;
        }
        Ok(total)
    })?;
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// One page through SQL: the total and the cursor after the page's last row (if more follow).
pub struct SqlPage {
    pub total: i64,
    pub next: Option<(i64, String)>,
}

/// What one shape measured.
pub struct ShapeResult {
    pub http: Samples,
    pub sql: Samples,
    /// Mean number of matching tasks (TotalCount) over the measured queries.
    pub mean_total: f64,
    /// Warm-up answers whose TotalCount differed from the SQL count.
    pub mismatches: u64,
    pub plan: String,
}

/// Measures one shape: `warmup` then `requests` calls over HTTP, then the same queries in SQL.
pub async fn measure_shape(
    shape: Shape,
    data: &mut Dataset,
    client: &Client,
    pool: &SqlLimit,
    warmup: usize,
    requests: usize,
    page_size: usize,
) -> anyhow::Result<ShapeResult> {
    let mut http = Samples::new();
    let mut sql = Samples::new();
    let mut totals = 0f64;
    let mut mismatches = 0;
    if shape == Shape::DeepPaging {
        const PAGES: usize = 50;
        let walks = (warmup + requests).div_ceil(PAGES);
        let warm_walks = warmup.div_ceil(PAGES);
        let q = Query::default();
        for walk in 0..walks {
            let mut token: Option<String> = None;
            for page in 0..PAGES {
                let answer = client
                    .call_raw("DescribeTasks", &q.params(page_size, token.as_deref()))
                    .await?;
                let body: Value = answer.result().context("DescribeTasks (paging)")?;
                if walk >= warm_walks {
                    http.push(answer.elapsed);
                }
                token = body
                    .get("NextToken")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if token.is_none() {
                    if page + 1 < PAGES {
                        bail!("the listing ended after {} pages", page + 1);
                    }
                    break;
                }
            }
        }
        for walk in 0..walks {
            let mut after: Option<(i64, String)> = None;
            for _ in 0..PAGES {
                let started = Instant::now();
                let page = pool.page(&q, after.as_ref(), page_size)?;
                if walk >= warm_walks {
                    sql.push(started.elapsed());
                    totals += page.total as f64;
                }
                after = page.next;
                if after.is_none() {
                    break;
                }
            }
        }
        let plan = pool.query_plan(&q, page_size)?;
        return Ok(ShapeResult {
            mean_total: totals / sql.len().max(1) as f64,
            http,
            sql,
            mismatches,
            plan,
        });
    }
    let queries: Vec<Query> = (0..warmup + requests)
        .map(|_| Query::pick(shape, data))
        .collect();
    for (i, q) in queries.iter().enumerate() {
        let answer = client
            .call_raw("DescribeTasks", &q.params(page_size, None))
            .await?;
        if answer.status != 200 {
            answer
                .result::<Value>()
                .with_context(|| format!("DescribeTasks {q:?}"))?;
        }
        if i < warmup {
            // The warm-up also checks that the SQL here is the server's: same totals.
            let body: Value = answer.json()?;
            let total = body.get("TotalCount").and_then(Value::as_i64).unwrap_or(-1);
            let page = pool.page(q, None, page_size)?;
            if page.total != total {
                mismatches += 1;
            }
        } else {
            http.push(answer.elapsed);
        }
    }
    for (i, q) in queries.iter().enumerate() {
        let started = Instant::now();
        let page = pool.page(q, None, page_size)?;
        if i >= warmup {
            sql.push(started.elapsed());
            totals += page.total as f64;
        }
    }
    let plan = pool.query_plan(&queries[0], page_size)?;
    Ok(ShapeResult {
        mean_total: totals / requests.max(1) as f64,
        http,
        sql,
        mismatches,
        plan,
    })
}

/// Waits until the server answers DescribeTasks (it may still be opening the database).
pub async fn wait_ready(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client
            .call_raw("DescribeTasks", &params(&[("MaxResults", "1")]))
            .await
        {
            Ok(a) if a.status == 200 => return Ok(()),
            Ok(a) if Instant::now() > deadline => {
                a.result::<Value>()?;
            }
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudphone_store::statements::{TASK_COLUMNS, TASK_FROM};

    #[test]
    fn parameters_and_sql_name_the_same_filters() {
        let q = Query {
            task_type: Some("RebootInstance"),
            level: Some(1),
            ..Query::default()
        };
        assert_eq!(
            q.params(100, None),
            params(&[
                ("MaxResults", "100"),
                ("TaskType", "RebootInstance"),
                ("Level", "1")
            ])
        );
        let (_, list) = statements(&q, None, 100);
        assert_eq!(
            list.text(),
            format!(
                "{TASK_COLUMNS}{TASK_FROM} WHERE t.account_id = ? AND t.level = ? AND \
                 t.task_type IN (?) ORDER BY t.start_ms DESC, t.id DESC LIMIT ?"
            )
        );
        let after = (5, "t-1".to_string());
        let q = Query {
            instance_id: Some("acp-1".into()),
            statuses: vec!["Processing"],
            ..Query::default()
        };
        let (count, list) = statements(&q, Some(&after), 10);
        assert!(list.text().ends_with(
            " WHERE t.account_id = ? AND t.level IN (1, 2) AND t.status IN (?) AND t.level = 2 \
             AND t.instance_id = ? AND (t.start_ms, t.id) < (?, ?) \
             ORDER BY t.start_ms DESC, t.id DESC LIMIT ?"
        ));
        assert!(
            count
                .text()
                .starts_with("SELECT COUNT(*) FROM tasks t WHERE")
        );
        let broad = Query {
            statuses: vec!["Processing"],
            ..Query::default()
        };
        assert_eq!(
            statements(&broad, None, 10).0.text(),
            "SELECT CAST(COALESCE(SUM(n), 0) AS INTEGER) FROM task_counts t WHERE \
             t.account_id = ? AND t.level IN (1, 2) AND t.status IN (?)"
        );
        assert_eq!(
            q.params(10, Some("tok")),
            params(&[
                ("MaxResults", "10"),
                ("InstanceId", "acp-1"),
                ("TaskStatuses.1", "Processing"),
                ("NextToken", "tok")
            ])
        );
    }
}
