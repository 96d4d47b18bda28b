//! CreateWebhook, DescribeWebhooks, DeleteWebhook and DescribeWebhookDeliveries (extensions,
//! issue 10): an account registers URLs that are told, in a signed POST, when each of its
//! batches ends ([`cloudphone_engine::WebhookSender`]), and sees every delivery and its
//! attempts.

use cloudphone_core::time::iso;
use cloudphone_core::{ApiError, ids};
use cloudphone_store::Webhook;
use serde_json::{Value, json};

use super::common::internal;
use crate::params::Params;
use crate::state::Ctx;

/// Webhooks one account may have.
pub const MAX_WEBHOOKS: usize = 10;
const MAX_URL: usize = 2048;
/// A secret must be long enough to sign with and short enough to store.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

pub struct CreateWebhook {
    url: String,
    secret: String,
}

impl CreateWebhook {
    pub fn parse(p: &Params) -> Result<CreateWebhook, ApiError> {
        let url = p.required("Url")?;
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| ApiError::invalid("Url", format!("Not a URL: {e}.")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ApiError::invalid(
                "Url",
                "Only http and https URLs with a host.",
            ));
        }
        if url.len() > MAX_URL {
            return Err(ApiError::invalid("Url", "At most 2048 characters."));
        }
        let secret = p.required("Secret")?;
        if !SECRET_LEN.contains(&secret.chars().count()) {
            return Err(ApiError::invalid("Secret", "From 16 to 256 characters."));
        }
        Ok(CreateWebhook { url, secret })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        // The delivery's connection is checked again; this refuses early what would never go.
        // One message for every refusal: how a name resolves inside the server's network is
        // none of the tenant's business.
        if let Err(why) = ctx.state.webhook_targets.check(&self.url).await {
            tracing::debug!(url = %self.url, %why, "webhook URL refused");
            return Err(ApiError::invalid(
                "Url",
                "Refused: the host must be, and resolve only to, public addresses.",
            ));
        }
        let webhook = Webhook {
            id: ids::new_id(ids::WEBHOOK),
            account_id: ctx.account().to_string(),
            url: self.url,
            secret: self.secret,
            created_ms: ctx.now_ms,
        };
        let stored = ctx
            .state
            .store
            .create_webhook(&webhook, MAX_WEBHOOKS)
            .await
            .map_err(internal)?;
        if !stored {
            return Err(ApiError::QuotaExceeded {
                what: "webhooks".into(),
                limit: MAX_WEBHOOKS as u64,
                used: MAX_WEBHOOKS as u64,
                asked: 1,
            });
        }
        Ok(json!({ "WebhookId": webhook.id }))
    }
}

pub struct DescribeWebhooks;

impl DescribeWebhooks {
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let hooks = ctx
            .state
            .store
            .list_webhooks(ctx.account())
            .await
            .map_err(internal)?;
        Ok(json!({
            "Webhooks": hooks.iter().map(|w| json!({
                "WebhookId": w.id,
                "Url": w.url,
                "CreationTime": iso(w.created_ms),
            })).collect::<Vec<_>>(),
        }))
    }
}

pub struct DeleteWebhook {
    id: String,
}

impl DeleteWebhook {
    pub fn parse(p: &Params) -> Result<DeleteWebhook, ApiError> {
        Ok(DeleteWebhook {
            id: p.required("WebhookId")?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let gone = ctx
            .state
            .store
            .delete_webhook(ctx.account(), &self.id)
            .await
            .map_err(internal)?;
        if !gone {
            return Err(ApiError::not_found("WebhookId", &self.id));
        }
        Ok(json!({}))
    }
}

pub struct DescribeWebhookDeliveries {
    webhook_id: Option<String>,
    task_id: Option<String>,
    max_results: usize,
}

impl DescribeWebhookDeliveries {
    pub fn parse(p: &Params) -> Result<DescribeWebhookDeliveries, ApiError> {
        Ok(DescribeWebhookDeliveries {
            webhook_id: p.string("WebhookId"),
            task_id: p.string("TaskId"),
            max_results: p.int("MaxResults", 1, 100)?.unwrap_or(20) as usize,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let found = ctx
            .state
            .store
            .list_deliveries(
                ctx.account(),
                self.webhook_id.as_deref(),
                self.task_id.as_deref(),
                self.max_results,
            )
            .await
            .map_err(internal)?;
        let status = |s: &str| match s {
            "delivered" => "Delivered",
            "failed" => "Failed",
            _ => "Pending",
        };
        Ok(json!({
            "Deliveries": found.iter().map(|d| json!({
                "DeliveryId": format!("whd-{}", d.seq),
                "WebhookId": d.webhook_id,
                "TaskId": d.task_id,
                "Status": status(&d.state),
                "Attempts": d.attempts,
                "LastHttpStatus": d.last_status,
                "LastError": d.last_error,
                "CreationTime": iso(d.created_ms),
                "DeliveredTime": d.done_ms.filter(|_| d.state == "delivered").map(iso),
                "NextAttemptTime": d.next_ms.map(iso),
            })).collect::<Vec<_>>(),
        }))
    }
}
