//! The conformance suite of the [`Store`](cloudphone_store::Store): every check is an
//! `async fn check_xxx(store: &dyn Store)` written against the area traits only, in the file
//! of its area, so that each implementation runs the same checks. [`conformance!`] lists them
//! once and runs each on both stores: `sqlite::check_xxx` on a fresh database file in a temp
//! dir, `postgres::check_xxx` on a fresh database in a PostgreSQL cluster.
//!
//! The PostgreSQL tests need a cluster: `scripts/pg-cluster start DIR` starts a throwaway one
//! and prints its admin URL, to export as `CLOUDPHONE_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:PORT/postgres`; `scripts/test` does this). Without it they
//! fail, saying so.

mod accounts;
mod adb;
mod apps;
mod backups;
mod engine;
mod events;
mod fleet;
mod hosts;
mod idempotency;
mod leases;
mod postgres_only;
mod sim;
mod sqlite_only;
mod streams;
mod support;
mod tasks;
mod webhooks;

/// Runs each `area::check` on both stores, as `sqlite::check` and `postgres::check`.
macro_rules! conformance {
    ($($area:ident::$check:ident),* $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_dir, store) = crate::sqlite_only::store().await;
                crate::$area::$check(&*store).await;
            }
        )*}

        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let db = crate::postgres_only::TestDb::create().await;
                let store = db.connect().await;
                crate::$area::$check(&store).await;
                store.close().await;
                db.drop().await;
            }
        )*}
    };
}

conformance!(
    accounts::check_accounts_and_keys,
    accounts::check_admin_accounts_keys_and_audit,
    accounts::check_session_generations,
    accounts::check_nonces,
    accounts::check_settings,
    accounts::check_buckets,
    fleet::check_groups_and_instances,
    fleet::check_watcher_marks,
    fleet::check_instance_quota,
    fleet::check_adopted_instances,
    fleet::check_group_images,
    hosts::check_spread_and_bin_pack,
    hosts::check_unschedulable_hosts_take_nothing,
    hosts::check_no_stock_creates_nothing,
    hosts::check_leases_and_epochs,
    hosts::check_unhealthy_host_marks_running_phones,
    hosts::check_hosts_in_no_file_go_missing,
    hosts::check_upgrade_and_downgrade,
    hosts::check_drains_and_moves,
    tasks::check_create_batch,
    tasks::check_describe_filters,
    tasks::check_describe_order_and_pages,
    tasks::check_task_counts,
    tasks::check_broad_totals_follow_transitions,
    tasks::check_purge,
    tasks::check_cancel,
    tasks::check_account_isolation,
    engine::check_internal_task_lifecycle,
    engine::check_claim_order,
    engine::check_preconditions_and_batch_status,
    engine::check_fencing,
    engine::check_max_concurrency,
    engine::check_max_errors,
    engine::check_account_shares,
    engine::check_complete_many,
    engine::check_sweep,
    engine::check_sweep_of_a_cancelled_transfer,
    engine::check_expire_all_leases,
    idempotency::check_idempotency,
    events::check_task_events,
    webhooks::check_webhooks,
    backups::check_backups,
    apps::check_apps,
    adb::check_key_pairs,
    adb::check_attach_and_secure,
    adb::check_adb_ports,
    streams::check_epochs_and_disconnect,
    streams::check_control_and_viewer_cap,
    streams::check_stale_sessions,
    streams::check_reap,
    streams::check_session_listings,
    sim::check_sim_checkouts,
    leases::check_named_leases,
);

/// Workers of four threads claim and complete at once (the check takes the store shared).
mod concurrent {
    use std::sync::Arc;

    use cloudphone_store::Store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_check_concurrent_workers() {
        let (_dir, store) = crate::sqlite_only::store().await;
        let shared: Arc<dyn Store> = store.clone();
        crate::engine::check_concurrent_workers(shared).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_check_concurrent_placements() {
        let (_dir, store) = crate::sqlite_only::store().await;
        let shared: Arc<dyn Store> = store.clone();
        crate::hosts::check_concurrent_placements(shared.clone(), shared).await;
    }

    /// Two stores on one database: two nodes placing into the same room at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_check_concurrent_placements() {
        let db = crate::postgres_only::TestDb::create().await;
        let one = Arc::new(db.connect().await);
        let two = Arc::new(db.connect().await);
        crate::hosts::check_concurrent_placements(one.clone(), two.clone()).await;
        one.close().await;
        two.close().await;
        db.drop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_check_concurrent_adb_ports() {
        let (_dir, store) = crate::sqlite_only::store().await;
        let shared: Arc<dyn Store> = store.clone();
        crate::adb::check_concurrent_ports(shared.clone(), shared).await;
    }

    /// Two stores on one database: two nodes allocating ports at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_check_concurrent_adb_ports() {
        let db = crate::postgres_only::TestDb::create().await;
        let one = Arc::new(db.connect().await);
        let two = Arc::new(db.connect().await);
        crate::adb::check_concurrent_ports(one.clone(), two.clone()).await;
        one.close().await;
        two.close().await;
        db.drop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_check_concurrent_stream_opens() {
        let (_dir, store) = crate::sqlite_only::store().await;
        let shared: Arc<dyn Store> = store.clone();
        crate::streams::check_concurrent_opens(shared.clone(), shared).await;
    }

    /// Two stores on one database: viewers of one phone opening on two nodes at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_check_concurrent_stream_opens() {
        let db = crate::postgres_only::TestDb::create().await;
        let one = Arc::new(db.connect().await);
        let two = Arc::new(db.connect().await);
        crate::streams::check_concurrent_opens(one.clone(), two.clone()).await;
        one.close().await;
        two.close().await;
        db.drop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_check_concurrent_workers() {
        let db = crate::postgres_only::TestDb::create().await;
        let store = Arc::new(db.connect().await);
        let shared: Arc<dyn Store> = store.clone();
        crate::engine::check_concurrent_workers(shared).await;
        store.close().await;
        db.drop().await;
    }
}
