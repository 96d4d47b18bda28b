//! Apps registered with CreateApp, and their installation status, derived from the latest
//! install or uninstall batch over each app.

use cloudphone_core::resources::App;
use rusqlite::{Connection, Row};

use super::rows::{push_in, push_substring, total_and_rows};
use super::sql::{Sql, sql, v};
use super::tasks;
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

pub(super) fn create_app(conn: &Connection, app: &App) -> Result<i64> {
    sql(
        "INSERT INTO apps (account_id, name, package, version_name, version_code, md5, size, \
         source, description, icon_url, install_param, created_ms, modified_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [
            v(&app.account_id),
            v(&app.name),
            v(&app.package),
            v(&app.version_name),
            v(&app.version_code),
            v(&app.md5),
            v(app.size),
            v(&app.source),
            v(&app.description),
            v(&app.icon_url),
            v(&app.install_param),
            v(app.created_ms),
            v(app.modified_ms),
        ],
    )
    .scalar(conn)
}

fn push_filter(qb: &mut Sql, f: &AppFilter) {
    qb.push(" FROM apps a WHERE a.account_id = ")
        .bind(&f.account_id);
    push_in(
        qb,
        "CAST(a.id AS TEXT)",
        f.ids.iter().map(|i| i.to_string()),
    );
    push_substring(qb, "a.name", &f.name);
    if let Some(md5) = &f.md5 {
        qb.push(" AND lower(a.md5) = lower(").bind(md5).push(")");
    }
    if let Some(status) = &f.installation_status {
        qb.push(format!(" AND ({INSTALLATION_STATUS}) = "))
            .bind(status);
    }
}

fn app(row: &Row<'_>) -> Result<App> {
    Ok(App {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        name: row.get("name")?,
        package: row.get("package")?,
        version_name: row.get("version_name")?,
        version_code: row.get("version_code")?,
        md5: row.get("md5")?,
        size: row.get("size")?,
        source: row.get("source")?,
        description: row.get("description")?,
        icon_url: row.get("icon_url")?,
        install_param: row.get("install_param")?,
        created_ms: row.get("created_ms")?,
        modified_ms: row.get("modified_ms")?,
        installation_status: row.get("installation_status")?,
    })
}

pub(super) fn list_apps(
    conn: &Connection,
    filter: &AppFilter,
    page: &Page,
) -> Result<Listing<App>> {
    let mut count = Sql::new("SELECT COUNT(*)");
    push_filter(&mut count, filter);
    let mut list = Sql::new(format!(
        "SELECT a.id, a.account_id, a.name, a.package, a.version_name, a.version_code, a.md5, \
         a.size, a.source, a.description, a.icon_url, a.install_param, a.created_ms, \
         a.modified_ms, ({INSTALLATION_STATUS}) AS installation_status"
    ));
    push_filter(&mut list, filter);
    if let Some(after) = &page.after {
        list.push(" AND a.id < ").bind(after.ms);
    }
    let limit = page.limit.max(1);
    list.push(" ORDER BY a.id DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1);
    let (total, mut items) = total_and_rows(conn, &count, &list, app)?;
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

pub(super) fn delete_apps(conn: &Connection, account_id: &str, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut qb = Sql::new("DELETE FROM apps WHERE account_id = ");
    qb.bind(account_id);
    push_in(
        &mut qb,
        "CAST(id AS TEXT)",
        ids.iter().map(|i| i.to_string()),
    );
    qb.execute(conn)
}

pub(super) fn create_app_batch(
    conn: &Connection,
    batch: &NewBatch,
    app_ids: &[i64],
    install: bool,
) -> Result<()> {
    tasks::insert_batch(conn, batch)?;
    for id in app_ids {
        sql(
            "UPDATE apps SET install_task_id = ?, install_kind = ?, modified_ms = ? WHERE id = ? AND account_id = ?",
            [
                v(&batch.batch.id),
                v(if install { "install" } else { "uninstall" }),
                v(batch.batch.start_ms),
                v(*id),
                v(&batch.batch.account_id),
            ],
        )
        .execute(conn)?;
    }
    Ok(())
}
