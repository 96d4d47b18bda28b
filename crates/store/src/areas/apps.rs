//! Apps registered with CreateApp, and their installation status, derived from the latest
//! install or uninstall batch over each app.

use cloudphone_core::resources::App;

use super::tasks;
use crate::sql::conn::{Conn, Row};
use crate::sql::{Sql, page_size, v};
use crate::{AppFilter, Cursor, Listing, NewBatch, Page, Result};

area! {
    /// Apps registered with CreateApp.
    pub trait AppStore {
        /// Registers an app; returns its new id.
        fn create_app(&self, app: &App) -> i64 = autocommit (|c| create_app(c, app));
        /// Apps of an account, newest first; keyset on the id (`Cursor.ms` holds the last id).
        fn list_apps(&self, filter: &AppFilter, page: &Page) -> Listing<App> =
            snapshot (|c| list_apps(c, filter, page));
        /// Deletes the account's apps among `ids`; returns how many.
        fn delete_apps(&self, account_id: &str, ids: &[i64]) -> u64 =
            autocommit (|c| delete_apps(c, account_id, ids));
        /// Creates an InstallApp or UninstallApp batch and records it as the latest over
        /// `app_ids` (`install` says which), in one transaction.
        fn create_app_batch(&self, batch: &NewBatch, app_ids: &[i64], install: bool) -> () =
            write (|c| create_app_batch(c, batch, app_ids, install));
    }
}

/// The app's InstallationStatus, computed from its latest batch.
const INSTALLATION_STATUS: &str = "CASE WHEN a.install_task_id IS NULL THEN 'UNINSTALLED' ELSE \
     (SELECT CASE \
        WHEN u.status IN ('Waiting', 'Processing') THEN \
          CASE a.install_kind WHEN 'install' THEN 'INSTALLING' ELSE 'UNINSTALLING' END \
        WHEN u.status IN ('Finished', 'Skipped') THEN \
          CASE a.install_kind WHEN 'install' THEN 'INSTALLED' ELSE 'UNINSTALLED' END \
        ELSE CASE a.install_kind WHEN 'install' THEN 'INSTALLFAILED' ELSE 'UNINSTALLFAILED' END \
      END FROM tasks u WHERE u.id = a.install_task_id) END";

async fn create_app(c: &mut impl Conn, app: &App) -> Result<i64> {
    let q = c.with(
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
    );
    c.int(&q).await
}

fn push_filter(q: &mut Sql, f: &AppFilter) {
    q.push(" FROM apps a WHERE a.account_id = ")
        .bind(&f.account_id)
        .and_in_ints("a.id", &f.ids)
        .and_contains("a.name", &f.name);
    if let Some(md5) = &f.md5 {
        q.push(" AND lower(a.md5) = lower(").bind(md5).push(")");
    }
    if let Some(status) = &f.installation_status {
        q.push(format!(" AND ({INSTALLATION_STATUS}) = "))
            .bind(status);
    }
}

fn app(row: &dyn Row) -> Result<App> {
    Ok(App {
        id: row.int("id")?,
        account_id: row.text("account_id")?,
        name: row.text("name")?,
        package: row.text("package")?,
        version_name: row.text("version_name")?,
        version_code: row.text("version_code")?,
        md5: row.text("md5")?,
        size: row.int("size")?,
        source: row.text("source")?,
        description: row.text("description")?,
        icon_url: row.text("icon_url")?,
        install_param: row.text("install_param")?,
        created_ms: row.int("created_ms")?,
        modified_ms: row.int("modified_ms")?,
        installation_status: row.text("installation_status")?,
    })
}

async fn list_apps(c: &mut impl Conn, filter: &AppFilter, page: &Page) -> Result<Listing<App>> {
    let mut count = c.sql("SELECT COUNT(*)");
    push_filter(&mut count, filter);
    let mut list = c.sql(&format!(
        "SELECT a.id, a.account_id, a.name, a.package, a.version_name, a.version_code, a.md5, \
         a.size, a.source, a.description, a.icon_url, a.install_param, a.created_ms, \
         a.modified_ms, ({INSTALLATION_STATUS}) AS installation_status"
    ));
    push_filter(&mut list, filter);
    if let Some(after) = &page.after {
        list.push(" AND a.id < ").bind(after.ms);
    }
    list.push(" ORDER BY a.id DESC LIMIT ")
        .bind(crate::sql::fetch_limit(page.limit));
    let total = c.int(&count).await?;
    let mut items = c.rows(&list, app).await?;
    let limit = page_size(page.limit);
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

async fn delete_apps(c: &mut impl Conn, account_id: &str, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut q = c.sql("DELETE FROM apps WHERE account_id = ");
    q.bind(account_id).and_in_ints("id", ids);
    c.execute(&q).await
}

async fn create_app_batch(
    c: &mut impl Conn,
    batch: &NewBatch,
    app_ids: &[i64],
    install: bool,
) -> Result<()> {
    tasks::insert_batch(c, batch).await?;
    if !app_ids.is_empty() {
        let mut q = c.sql("UPDATE apps SET install_task_id = ");
        q.bind(&batch.batch.id)
            .push(", install_kind = ")
            .bind(if install { "install" } else { "uninstall" })
            .push(", modified_ms = ")
            .bind(batch.batch.start_ms)
            .push(" WHERE account_id = ")
            .bind(&batch.batch.account_id)
            .and_in_ints("id", app_ids);
        c.execute(&q).await?;
    }
    c.wake_workers().await
}
