//! The plain data of webhooks: the URLs an account registered, and the deliveries queued for
//! them when a batch ends (see [`crate::Store::claim_deliveries`]).

/// A webhook as stored; the secret never leaves the server except as the signatures it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub secret: String,
    pub created_ms: i64,
}

/// A delivery a sender leased: what to post where, signed with which secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub seq: i64,
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    /// This attempt, from 1.
    pub attempt: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryEnd {
    /// The receiver answered 2xx.
    Delivered { status: i64 },
    /// Failed; try again at `at_ms`.
    Retry {
        status: Option<i64>,
        error: String,
        at_ms: i64,
    },
    /// Failed, and no attempt is left.
    GaveUp { status: Option<i64>, error: String },
}

/// The columns an attempt's end writes.
pub(crate) struct EndColumns<'a> {
    pub state: &'static str,
    pub status: Option<i64>,
    pub error: Option<&'a str>,
    /// `not_before_ms`: when the next attempt is due (for a pending one).
    pub next_ms: i64,
    pub done_ms: Option<i64>,
}

impl DeliveryEnd {
    pub(crate) fn columns(&self, now_ms: i64) -> EndColumns<'_> {
        match self {
            DeliveryEnd::Delivered { status } => EndColumns {
                state: "delivered",
                status: Some(*status),
                error: None,
                next_ms: now_ms,
                done_ms: Some(now_ms),
            },
            DeliveryEnd::Retry {
                status,
                error,
                at_ms,
            } => EndColumns {
                state: "pending",
                status: *status,
                error: Some(error),
                next_ms: *at_ms,
                done_ms: None,
            },
            DeliveryEnd::GaveUp { status, error } => EndColumns {
                state: "failed",
                status: *status,
                error: Some(error),
                next_ms: now_ms,
                done_ms: Some(now_ms),
            },
        }
    }
}

/// A delivery as its account sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub seq: i64,
    pub webhook_id: String,
    pub task_id: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub done_ms: Option<i64>,
    /// When the next attempt is due (pending only).
    pub next_ms: Option<i64>,
}
