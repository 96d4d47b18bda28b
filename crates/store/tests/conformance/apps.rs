//! Apps and their installation status.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::App;
use cloudphone_core::{TaskErrorCode, TaskType};
use cloudphone_store::{AppFilter, Outcome, Page, Store};

use crate::support::{A, B, batch, fleet, page, run_all};
use InstanceStatus as S;

pub(crate) fn app(account: &str, package: &str) -> App {
    App {
        id: 0,
        account_id: account.into(),
        name: format!("App {package}"),
        package: package.into(),
        version_name: "1.0".into(),
        version_code: "1".into(),
        md5: "0123456789abcdef0123456789ABCDEF".into(),
        size: 2048,
        source: format!("oss://b/{package}.apk"),
        description: "d".into(),
        icon_url: String::new(),
        install_param: String::new(),
        created_ms: 1_000,
        modified_ms: 1_000,
        installation_status: String::new(),
    }
}

pub(crate) async fn apps_of(store: &dyn Store, filter: AppFilter) -> Vec<App> {
    store.list_apps(&filter, &page(100)).await.unwrap().items
}

pub(crate) async fn check_apps(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running)]).await;
    let one = store.create_app(&app(A, "com.example.one")).await.unwrap();
    let two = store.create_app(&app(A, "com.example.two")).await.unwrap();
    let theirs = store
        .create_app(&app(B, "com.example.theirs"))
        .await
        .unwrap();
    assert!(one < two && two < theirs, "ids grow");
    let of_a = AppFilter {
        account_id: A.into(),
        ..AppFilter::default()
    };
    let listed = apps_of(store, of_a.clone()).await;
    assert_eq!(
        listed.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![two, one],
        "newest first, own only"
    );
    assert!(
        listed
            .iter()
            .all(|a| a.installation_status == "UNINSTALLED")
    );
    assert_eq!(listed[1].package, "com.example.one");
    // Filters: ids, name substring, MD5 in any case.
    let by = |f: AppFilter| async move {
        apps_of(store, f)
            .await
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by(AppFilter {
            ids: vec![one, theirs],
            ..of_a.clone()
        })
        .await,
        vec![one]
    );
    assert_eq!(
        by(AppFilter {
            name: Some("two".into()),
            ..of_a.clone()
        })
        .await,
        vec![two]
    );
    assert_eq!(
        by(AppFilter {
            md5: Some("0123456789ABCDEF0123456789abcdef".into()),
            ..of_a.clone()
        })
        .await
        .len(),
        2
    );
    // Pages of one.
    let first = store.list_apps(&of_a, &page(1)).await.unwrap();
    assert_eq!((first.items.len(), first.total), (1, 2));
    let second = store
        .list_apps(
            &of_a,
            &Page {
                after: first.next.clone(),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items[0].id, one);
    assert!(second.next.is_none());
    // An install batch over app one: INSTALLING, then INSTALLED; then a failed uninstall.
    let mut b = batch("t-in", A, TaskType::InstallApp, 2_000, &["i1"]);
    b.children[0].param = format!(r#"{{"AppId":{one}}}"#);
    store.create_app_batch(&b, &[one], true).await.unwrap();
    let status = |id| async move {
        apps_of(
            store,
            AppFilter {
                ids: vec![id],
                ..AppFilter {
                    account_id: A.into(),
                    ..AppFilter::default()
                }
            },
        )
        .await[0]
            .installation_status
            .clone()
    };
    assert_eq!(status(one).await, "INSTALLING");
    assert_eq!(status(two).await, "UNINSTALLED");
    run_all(
        store,
        3_000,
        Outcome::Finished {
            result: "{}".into(),
        },
    )
    .await;
    assert_eq!(status(one).await, "INSTALLED");
    assert_eq!(
        by(AppFilter {
            installation_status: Some("INSTALLED".into()),
            ..of_a.clone()
        })
        .await,
        vec![one]
    );
    store
        .create_app_batch(
            &batch("t-un", A, TaskType::UninstallApp, 4_000, &["i1"]),
            &[one],
            false,
        )
        .await
        .unwrap();
    assert_eq!(status(one).await, "UNINSTALLING");
    run_all(
        store,
        5_000,
        Outcome::Failed {
            code: TaskErrorCode::UninstallAppFailed,
            message: "no".into(),
        },
    )
    .await;
    assert_eq!(status(one).await, "UNINSTALLFAILED");
    // Deleting: only the account's own.
    assert_eq!(store.delete_apps(A, &[one, theirs]).await.unwrap(), 1);
    assert_eq!(by(of_a).await, vec![two]);
    assert_eq!(
        apps_of(
            store,
            AppFilter {
                account_id: B.into(),
                ..AppFilter::default()
            }
        )
        .await
        .len(),
        1
    );
}
