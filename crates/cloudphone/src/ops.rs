//! What monitoring reads, beside the API: `/metrics` (Prometheus text, every name prefixed
//! `cloudphone_`), `/healthz` (the process answers) and `/readyz` (its store answers too).
//!
//! `/healthz` and `/readyz` are on every listener. `/metrics` tells more than a stranger should
//! see (accounts' task counts, the actions called): it is served on the `--metrics-listen`
//! address, and on the API's port only with `--metrics-token`, whose bearer token it then
//! requires (on both); without either option the API's port answers it 404.
//!
//! Counters and histograms (requests by action and code, latency, claims, task runs, backend
//! errors) are recorded through the `metrics` facade where they happen; the tasks by type, level
//! and status, and the queue depth, are the store's own counts, shared by every node of a
//! database and read at most every few seconds.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cloudphone_core::{Level, TaskStatus};
use cloudphone_store::{Store, TaskCount};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// How long the store's task counts are reused (they read every task).
const COUNTS_TTL: Duration = Duration::from_secs(5);

/// The process's one recorder: installed at the first call, shared by every node built in it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .expect("buckets are not empty");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): render an unused one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

struct Ops {
    store: Arc<dyn Store>,
    handle: PrometheusHandle,
    counts: Mutex<Option<(Instant, Vec<TaskCount>)>>,
    /// The bearer token `/metrics` requires (`--metrics-token`), if any.
    token: Option<String>,
}

/// Who may read `/metrics` (`serve --metrics-listen`, `--metrics-token`).
#[derive(Clone, Debug, Default)]
pub struct MetricsAccess {
    /// A listener of its own for `/metrics` (and the health routes).
    pub listen: Option<String>,
    /// The bearer token `/metrics` requires, wherever it is served; with it, the API's port
    /// serves `/metrics` too.
    pub token: Option<String>,
}

/// The routes of the API's port: the health routes, and `/metrics` if a token guards it.
pub fn routes(store: Arc<dyn Store>, access: &MetricsAccess) -> Router {
    let router = health(store.clone());
    match &access.token {
        Some(token) => router.merge(metrics_route(store, Some(token.clone()))),
        None => router.route("/metrics", get(not_here)),
    }
}

/// The routes of the `--metrics-listen` address: `/metrics` and the health routes.
pub fn metrics_routes(store: Arc<dyn Store>, access: &MetricsAccess) -> Router {
    health(store.clone()).merge(metrics_route(store, access.token.clone()))
}

fn ops(store: Arc<dyn Store>, token: Option<String>) -> Arc<Ops> {
    Arc::new(Ops {
        store,
        handle: recorder(),
        counts: Mutex::new(None),
        token,
    })
}

fn health(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(ops(store, None))
}

fn metrics_route(store: Arc<dyn Store>, token: Option<String>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(ops(store, token))
}

async fn not_here() -> Response {
    (
        StatusCode::NOT_FOUND,
        "/metrics is not served here: see serve --metrics-listen and --metrics-token\n",
    )
        .into_response()
}

/// Whether `headers` carry `Authorization: Bearer <token>` (digests compared, so the time
/// taken says nothing about how much of the token matched).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    Sha256::digest(given.trim().as_bytes()) == Sha256::digest(token.as_bytes())
}

async fn ready(State(ops): State<Arc<Ops>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), ops.store.instance("")).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!("not ready: the store failed: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store does not answer\n",
        )
            .into_response(),
    }
}

async fn metrics(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    if let Some(token) = &ops.token
        && !bearer_matches(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "/metrics needs the bearer token of --metrics-token\n",
        )
            .into_response();
    }
    ops.handle.run_upkeep();
    let mut out = ops.handle.render();
    let counts = {
        let mut cached = ops.counts.lock().await;
        match cached.as_ref() {
            Some((at, counts)) if at.elapsed() < COUNTS_TTL => Some(counts.clone()),
            _ => match ops.store.task_counts().await {
                Ok(counts) => {
                    *cached = Some((Instant::now(), counts.clone()));
                    Some(counts)
                }
                Err(e) => {
                    tracing::warn!("/metrics: cannot count the tasks: {e}");
                    None
                }
            },
        }
    };
    if let Some(counts) = counts {
        out.push_str(&render_counts(&counts));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Internal => "internal",
        Level::Batch => "batch",
        Level::Instance => "instance",
    }
}

/// The store's counts as Prometheus gauges.
fn render_counts(counts: &[TaskCount]) -> String {
    let mut out = String::from(
        "# HELP cloudphone_tasks Tasks stored, by type, level and status (all accounts).\n\
         # TYPE cloudphone_tasks gauge\n",
    );
    let mut queued = 0;
    for c in counts {
        out.push_str(&format!(
            "cloudphone_tasks{{type=\"{}\",level=\"{}\",status=\"{}\"}} {}\n",
            c.task_type,
            level_name(c.level),
            c.status,
            c.count
        ));
        if c.level != Level::Batch && c.status == TaskStatus::Waiting {
            queued += c.count;
        }
    }
    out.push_str(
        "# HELP cloudphone_queue_depth Instance tasks waiting to run (all nodes).\n\
         # TYPE cloudphone_queue_depth gauge\n",
    );
    out.push_str(&format!("cloudphone_queue_depth {queued}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudphone_core::TaskType;

    #[test]
    fn only_the_exact_bearer_token_is_taken() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(bearer_matches(&h, "s3cret"));
        assert!(!bearer_matches(&h, "s3cre"));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!bearer_matches(&h, "s3cret"));
    }

    #[test]
    fn counts_render_as_gauges_with_the_queue_depth() {
        let counts = [
            TaskCount {
                task_type: TaskType::RebootInstance,
                level: Level::Batch,
                status: TaskStatus::Waiting,
                count: 2,
            },
            TaskCount {
                task_type: TaskType::RebootInstance,
                level: Level::Instance,
                status: TaskStatus::Waiting,
                count: 7,
            },
            TaskCount {
                task_type: TaskType::CreateInstance,
                level: Level::Internal,
                status: TaskStatus::Waiting,
                count: 1,
            },
        ];
        let text = render_counts(&counts);
        assert!(text.contains(
            "cloudphone_tasks{type=\"RebootInstance\",level=\"instance\",status=\"Waiting\"} 7\n"
        ));
        assert!(text.contains("cloudphone_queue_depth 8\n"), "{text}");
    }
}
