//! Apps registered with CreateApp, and their installation status, derived from the latest
//! install or uninstall batch over each app.

use cloudphone_core::resources::App;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{push_in, push_substring};
use super::{SqliteStore, tasks};
use crate::{AppFilter, Cursor, Listing, NewBatch, Page, Result};

/// The app's InstallationStatus, computed from its latest batch.
const INSTALLATION_STATUS: &str = "CASE WHEN a.install_task_id IS NULL THEN 'UNINSTALLED' ELSE \
     (SELECT CASE \
        WHEN u.status IN ('Waiting', 'Processing') THEN \
          CASE a.install_kind WHEN 'install' THEN 'INSTALLING' ELSE 'UNINSTALLING' END \
        WHEN u.status IN ('Finished', 'Skipped') THEN \
          CASE a.install_kind WHEN 'install' THEN 'INSTALLED' ELSE 'UNINSTALLED' END \
        ELSE CASE a.install_kind WHEN 'install' THEN 'INSTALLFAILED' ELSE 'UNINSTALLFAILED' END \
      END FROM tasks u WHERE u.id = a.install_task_id) END";

pub(super) async fn create_app(s: &SqliteStore, app: &App) -> Result<i64> {
    let mut w = s.write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO apps (account_id, name, package, version_name, version_code, md5, size, \
         source, description, icon_url, install_param, created_ms, modified_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&app.account_id)
    .bind(&app.name)
    .bind(&app.package)
    .bind(&app.version_name)
    .bind(&app.version_code)
    .bind(&app.md5)
    .bind(app.size)
    .bind(&app.source)
    .bind(&app.description)
    .bind(&app.icon_url)
    .bind(&app.install_param)
    .bind(app.created_ms)
    .bind(app.modified_ms)
    .fetch_one(&mut *w.tx)
    .await?;
    w.commit().await?;
    Ok(id)
}

fn push_filter(qb: &mut QueryBuilder<Sqlite>, f: &AppFilter) {
    qb.push(" FROM apps a WHERE a.account_id = ")
        .push_bind(f.account_id.clone());
    push_in(
        qb,
        "CAST(a.id AS TEXT)",
        f.ids.iter().map(|i| i.to_string()),
    );
    push_substring(qb, "a.name", &f.name);
    if let Some(md5) = &f.md5 {
        qb.push(" AND lower(a.md5) = lower(")
            .push_bind(md5.clone())
            .push(")");
    }
    if let Some(status) = &f.installation_status {
        qb.push(format_args!(" AND ({INSTALLATION_STATUS}) = "))
            .push_bind(status.clone());
    }
}

fn app(row: &SqliteRow) -> Result<App> {
    Ok(App {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        package: row.try_get("package")?,
        version_name: row.try_get("version_name")?,
        version_code: row.try_get("version_code")?,
        md5: row.try_get("md5")?,
        size: row.try_get("size")?,
        source: row.try_get("source")?,
        description: row.try_get("description")?,
        icon_url: row.try_get("icon_url")?,
        install_param: row.try_get("install_param")?,
        created_ms: row.try_get("created_ms")?,
        modified_ms: row.try_get("modified_ms")?,
        installation_status: row.try_get("installation_status")?,
    })
}

pub(super) async fn list_apps(
    s: &SqliteStore,
    filter: &AppFilter,
    page: &Page,
) -> Result<Listing<App>> {
    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
    push_filter(&mut count, filter);
    let mut list = QueryBuilder::<Sqlite>::new(format!(
        "SELECT a.id, a.account_id, a.name, a.package, a.version_name, a.version_code, a.md5, \
         a.size, a.source, a.description, a.icon_url, a.install_param, a.created_ms, \
         a.modified_ms, ({INSTALLATION_STATUS}) AS installation_status"
    ));
    push_filter(&mut list, filter);
    if let Some(after) = &page.after {
        list.push(" AND a.id < ").push_bind(after.ms);
    }
    let limit = page.limit.max(1);
    list.push(" ORDER BY a.id DESC LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1);
    let mut tx = s.pool.begin().await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let rows = list.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let mut items = rows.iter().map(app).collect::<Result<Vec<_>>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|a| Cursor {
            ms: a.id,
            id: String::new(),
        })
    } else {
        None
    };
    Ok(Listing { items, total, next })
}

pub(super) async fn delete_apps(s: &SqliteStore, account_id: &str, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut w = s.write().await?;
    let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM apps WHERE account_id = ");
    qb.push_bind(account_id.to_string());
    push_in(
        &mut qb,
        "CAST(id AS TEXT)",
        ids.iter().map(|i| i.to_string()),
    );
    let n = qb.build().execute(&mut *w.tx).await?.rows_affected();
    w.commit().await?;
    Ok(n)
}

pub(super) async fn create_app_batch(
    s: &SqliteStore,
    batch: &NewBatch,
    app_ids: &[i64],
    install: bool,
) -> Result<()> {
    let mut w = s.write().await?;
    tasks::insert_batch(&mut w.tx, batch).await?;
    for id in app_ids {
        sqlx::query("UPDATE apps SET install_task_id = ?, install_kind = ?, modified_ms = ? WHERE id = ? AND account_id = ?")
            .bind(&batch.batch.id)
            .bind(if install { "install" } else { "uninstall" })
            .bind(batch.batch.start_ms)
            .bind(id)
            .bind(&batch.batch.account_id)
            .execute(&mut *w.tx)
            .await?;
    }
    w.commit().await
}
