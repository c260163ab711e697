//! Webhooks: register (the signing secret shown once), list, remove, and read a delivery log.

use super::*;
use crate::domain::webhook::{
    self, Delivery, EventKind, MAX_DESCRIPTION_LEN, MAX_WEBHOOKS, Webhook,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// A webhook as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The events it receives (`sync.completed`, `sync.failed`, ...).
    pub events: Vec<String>,
    pub description: String,
    pub created_at: String,
}

impl WebhookView {
    fn of(h: &Webhook) -> Self {
        WebhookView {
            id: h.id.clone(),
            url: h.url.clone(),
            events: h.events.iter().map(|e| e.as_str().to_string()).collect(),
            description: h.description.clone(),
            created_at: h.created_at.rfc3339(),
        }
    }
}

/// A webhook as created: with its signing secret, which is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Verifies `Cupid-Sync-Signature` (HMAC-SHA256 over `{t}.{body}`). Shown once.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
    /// Every event a webhook may subscribe to.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryLog {
    pub webhook_id: String,
    pub deliveries: Vec<Delivery>,
}

impl WithHooks {
    fn webhook_store(&self) -> Result<&Arc<dyn Webhooks>, ApiError> {
        Ok(&self.webhooks)
    }

    pub(super) async fn webhook_list(&self) -> Result<ApiResponse, ApiError> {
        let hooks = self.webhook_store()?.list().await?;
        Ok(ApiResponse::ok(
            200,
            &WebhookList {
                webhooks: hooks.iter().map(WebhookView::of).collect(),
                events: EventKind::ALL.iter().map(|e| e.as_str().into()).collect(),
            },
        ))
    }

    pub(super) async fn webhook_create(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let store = self.webhook_store()?;
        let body: CreateBody = req.json()?.ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "body must be a JSON object {\"url\", \"events\", \"description\"}",
                "body",
            )
        })?;
        let url = body
            .url
            .ok_or_else(|| ApiError::bad_request("invalid_url", "url is required", "url"))?;
        let url = webhook::check_url(url.trim(), self.webhook_policy)
            .map_err(|e| ApiError::bad_request("invalid_url", e.to_string(), "url"))?;
        let events = webhook::parse_events(&body.events.unwrap_or_default())
            .map_err(|e| ApiError::bad_request("invalid_events", e, "events"))?;
        let description = body.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(ApiError::bad_request(
                "invalid_description",
                format!("description is longer than {MAX_DESCRIPTION_LEN} characters"),
                "description",
            ));
        }
        // A list then a put: two creates at once may both pass (21 webhooks); harmless.
        if store.list().await?.len() >= MAX_WEBHOOKS {
            return Err(ApiError::Conflict {
                code: "too_many_webhooks",
                message: format!("at most {MAX_WEBHOOKS} webhooks; remove one first"),
                details: serde_json::Value::Null,
            });
        }
        let secret = webhook::new_secret()
            .map_err(|e| ApiError::Internal(format!("no random source for the secret: {e}")))?;
        let hook = Webhook {
            id: format!("wh_{}", self.clock.new_id().to_ascii_lowercase()),
            url: url.to_string(),
            events,
            description,
            secret,
            created_at: self.clock.now(),
        };
        store.create(&hook).await?;
        // The host only: receiver URLs often carry a token in their path or query.
        tracing::info!(webhook_id = %hook.id, host = url.host_str().unwrap_or_default(), "webhook added");
        Ok(ApiResponse::ok(
            201,
            &CreatedWebhook {
                webhook: WebhookView::of(&hook),
                secret: hook.secret.clone(),
            },
        ))
    }

    pub(super) async fn webhook_delete(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = req.param("webhook_id");
        if !webhook::is_webhook_id(id) || !self.webhook_store()?.delete(id).await? {
            return Err(ApiError::NotFound(format!("no webhook {id}")));
        }
        tracing::info!(webhook_id = %id, "webhook removed");
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({ "id": id, "deleted": true }),
        ))
    }

    pub(super) async fn webhook_deliveries(
        &self,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let id = req.param("webhook_id");
        let limit = match req.query.get("limit") {
            None => 20,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(v) if (1..=100).contains(&v) => v,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be a whole number from 1 to 100 (got `{raw}`)"),
                        "limit",
                    ));
                }
            },
        };
        let store = self.webhook_store()?;
        if !webhook::is_webhook_id(id) || store.get(id).await?.is_none() {
            return Err(ApiError::NotFound(format!("no webhook {id}")));
        }
        Ok(ApiResponse::ok(
            200,
            &DeliveryLog {
                webhook_id: id.to_string(),
                deliveries: store.deliveries(id, limit).await?,
            },
        ))
    }
}
