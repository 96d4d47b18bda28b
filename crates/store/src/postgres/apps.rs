//! Apps registered with CreateApp, and their installation status, derived from the latest
//! install or uninstall batch over each app.

use cloudphone_core::resources::App;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::rows::{fetch_limit, page_size, push_substring};
use super::{PgStore, notify_work, tasks};
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

pub(super) async fn create_app(s: &PgStore, app: &App) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO apps (account_id, name, package, version_name, version_code, md5, size, \
         source, description, icon_url, install_param, created_ms, modified_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
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
    .fetch_one(&s.pool)
    .await?;
    Ok(id)
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &AppFilter) {
    qb.push(" FROM apps a WHERE a.account_id = ")
        .push_bind(f.account_id.clone());
    if !f.ids.is_empty() {
        qb.push(" AND a.id = ANY(")
            .push_bind(f.ids.clone())
            .push(")");
    }
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

fn app(row: &PgRow) -> Result<App> {
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
    s: &PgStore,
    filter: &AppFilter,
    page: &Page,
) -> Result<Listing<App>> {
    let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*)");
    push_filter(&mut count, filter);
    let mut list = QueryBuilder::<Postgres>::new(format!(
        "SELECT a.id, a.account_id, a.name, a.package, a.version_name, a.version_code, a.md5, \
         a.size, a.source, a.description, a.icon_url, a.install_param, a.created_ms, \
         a.modified_ms, ({INSTALLATION_STATUS}) AS installation_status"
    ));
    push_filter(&mut list, filter);
    if let Some(after) = &page.after {
        list.push(" AND a.id < ").push_bind(after.ms);
    }
    list.push(" ORDER BY a.id DESC LIMIT ")
        .push_bind(fetch_limit(page.limit));
    let mut tx = s.read().await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let rows = list.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let limit = page_size(page.limit);
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

pub(super) async fn delete_apps(s: &PgStore, account_id: &str, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query("DELETE FROM apps WHERE account_id = $1 AND id = ANY($2)")
        .bind(account_id)
        .bind(ids)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn create_app_batch(
    s: &PgStore,
    batch: &NewBatch,
    app_ids: &[i64],
    install: bool,
) -> Result<()> {
    let mut tx = s.pool.begin().await?;
    tasks::insert_batch(&mut tx, batch).await?;
    if !app_ids.is_empty() {
        sqlx::query(
            "UPDATE apps SET install_task_id = $1, install_kind = $2, modified_ms = $3 \
             WHERE id = ANY($4) AND account_id = $5",
        )
        .bind(&batch.batch.id)
        .bind(if install { "install" } else { "uninstall" })
        .bind(batch.batch.start_ms)
        .bind(app_ids)
        .bind(&batch.batch.account_id)
        .execute(&mut *tx)
        .await?;
    }
    notify_work(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
