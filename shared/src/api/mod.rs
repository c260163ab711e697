//! The HTTP edge shared by all functions: routing, auth, envelope, errors, request limits.

pub mod app;
pub mod openapi;
pub mod routes;
pub mod wire;

use crate::config::Secret;
use async_trait::async_trait;
use routes::{Op, Resolved, Route};
use serde::Serialize;
use std::collections::BTreeMap;

/// Request bodies above this are refused with 413 (10,000 ids of 16 digits fit).
pub const MAX_BODY: usize = 256 * 1024;

/// A request as the handlers see it (no lambda_http types past this point).
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub params: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// Parses the JSON body; an empty body is `None`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        let parsed = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let field = field_of(&e);
            let e = e.into_inner();
            ApiError::bad_request(
                "invalid_body",
                format!("request body is not valid for this route: {field}: {e}"),
                field,
            )
        })?;
        de.end().map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("request body is not valid for this route: {e}"),
                "body",
            )
        })?;
        Ok(Some(parsed))
    }
}

/// The field a body error is about (`force`, `hotel_ids[2]`): the path serde reached, or the
/// field a "missing field" / "unknown field" error names; `body` for the body as a whole.
fn field_of(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let msg = e.inner().to_string();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| msg.split(p).nth(1))
        .and_then(|rest| rest.split('`').next())
        .filter(|n| !n.is_empty());
    // `?` is a place serde could not name (a syntax error mid-body): up to the last named.
    let full = e.path().to_string();
    let path = match full.split_once('?') {
        Some((before, _)) => before.trim_end_matches('.').to_string(),
        None => full,
    };
    let path = if path.is_empty() {
        ".".to_string()
    } else {
        path
    };
    match (path.as_str(), named) {
        (".", Some(n)) => n.to_string(),
        (".", None) => "body".to_string(),
        // An unknown field's path already ends with it; a missing one's is its parent.
        (p, Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p.to_string(),
        (p, Some(n)) => format!("{p}.{n}"),
        (p, None) => p.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// `{"success": true, "data": ...}`
    pub fn ok<T: Serialize>(status: u16, data: &T) -> Self {
        let body = serde_json::to_vec(&serde_json::json!({ "success": true, "data": data }))
            .unwrap_or_default();
        ApiResponse {
            status,
            content_type: "application/json",
            body,
        }
    }
    pub fn raw(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        ApiResponse {
            status,
            content_type,
            body,
        }
    }
}

/// Every error the API answers with; each maps to one status and a snake_case code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: String,
    },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed { method: String, allowed: String },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
    /// A stored setting that no longer validates: every route that depends on it says so.
    #[error("{0}")]
    InvalidStoredSetting(crate::domain::settings::StoredSettingError),
}

impl ApiError {
    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field: field.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized => 401,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) | ApiError::InvalidStoredSetting(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::InvalidStoredSetting(_) => "invalid_stored_setting",
        }
    }

    pub fn to_response(&self) -> ApiResponse {
        let mut err = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        match self {
            ApiError::BadRequest { field, .. } => {
                err["details"] = serde_json::json!({ "field": field })
            }
            ApiError::Conflict { details, .. } if !details.is_null() => {
                err["details"] = details.clone()
            }
            ApiError::InvalidStoredSetting(e) => {
                err["details"] =
                    serde_json::json!({ "setting_key": e.key.as_str(), "stored_value": e.value })
            }
            _ => {}
        }
        let body = serde_json::to_vec(&serde_json::json!({ "success": false, "error": err }))
            .unwrap_or_default();
        ApiResponse {
            status: self.status(),
            content_type: "application/json",
            body,
        }
    }
}

impl From<crate::domain::settings::StoredSettingError> for ApiError {
    fn from(e: crate::domain::settings::StoredSettingError) -> Self {
        ApiError::InvalidStoredSetting(e)
    }
}

impl From<crate::ports::PortError> for ApiError {
    fn from(e: crate::ports::PortError) -> Self {
        tracing::error!(call = %e.call, error = %e.message, "dependency call failed");
        ApiError::Unavailable(format!(
            "a dependency is unavailable ({}); try again shortly",
            e.call
        ))
    }
}

/// The pages' content security policy: inline script and styles (one self-contained page
/// each), requests to this origin only, no framing.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What a function implements: the ops it serves.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError>;
}

/// Constant-time bearer check.
pub fn authorized(header: Option<&str>, token: &Secret) -> bool {
    use subtle::ConstantTimeEq;
    let Some(h) = header else { return false };
    let Some(presented) = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
    else {
        return false;
    };
    let (a, b) = (presented.trim().as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Routes, authenticates and checks a request, then hands it to the function's handler.
/// `function` limits the routes to this function's own (others are 404 here).
pub async fn serve(
    function: &str,
    token: Option<&Secret>,
    handler: &dyn Handler,
    mut req: ApiRequest,
) -> ApiResponse {
    let route: &Route = match routes::resolve(&req.method, &req.path) {
        Resolved::Found(r, params) if r.function == function => {
            req.params = params.into_iter().collect();
            r
        }
        Resolved::WrongMethod(allowed) => {
            return ApiError::MethodNotAllowed {
                method: req.method.clone(),
                allowed: allowed.join(", "),
            }
            .to_response();
        }
        _ => {
            return ApiError::NotFound(format!("no route for {} {}", req.method, req.path))
                .to_response();
        }
    };
    if route.auth {
        let ok = token.is_some_and(|t| authorized(req.authorization.as_deref(), t));
        if !ok {
            return ApiError::Unauthorized.to_response();
        }
    }
    if req.body.len() > MAX_BODY {
        return ApiError::PayloadTooLarge.to_response();
    }
    let has_body = !req.body.iter().all(u8::is_ascii_whitespace);
    if has_body {
        let json = req
            .content_type
            .as_deref()
            .map(|c| c.to_ascii_lowercase())
            .is_some_and(|c| c.starts_with("application/json") || c.contains("+json"));
        if !json {
            return ApiError::UnsupportedMediaType.to_response();
        }
    }
    match handler.handle(route.op, &req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status() >= 500 {
                tracing::warn!(method = %req.method, path = %req.path, status = e.status(), error = %e, "request failed");
            }
            e.to_response()
        }
    }
}

/// Converts an API Gateway (HTTP API, payload v2) event as lambda_http parsed it.
pub fn from_lambda(event: &lambda_http::Request) -> ApiRequest {
    use lambda_http::{Body, RequestExt};
    let query = event
        .query_string_parameters()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let header = |name: &str| {
        event
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ApiRequest {
        method: event.method().as_str().to_string(),
        path: event.uri().path().to_string(),
        params: BTreeMap::new(),
        query,
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: match event.body() {
            Body::Empty => Vec::new(),
            Body::Text(t) => t.as_bytes().to_vec(),
            Body::Binary(b) => b.clone(),
            _ => Vec::new(),
        },
    }
}

/// Runs an HTTP function under the Lambda runtime (API Gateway HTTP API, payload v2).
pub async fn run_lambda(
    function: &'static str,
    token: Option<Secret>,
    handler: std::sync::Arc<dyn Handler>,
) -> Result<(), lambda_http::Error> {
    let token = std::sync::Arc::new(token);
    crate::runtime_loop::keep_serving(function, std::time::Duration::from_millis(200), |served| {
        serve_http(function, token.clone(), handler.clone(), served)
    })
    .await
}

/// One Lambda runtime loop of an HTTP function.
async fn serve_http(
    function: &'static str,
    token: std::sync::Arc<Option<Secret>>,
    handler: std::sync::Arc<dyn Handler>,
    served: crate::runtime_loop::Served,
) -> Result<(), lambda_http::Error> {
    use lambda_http::{Body, Response, service_fn};
    lambda_http::run(service_fn(move |event: lambda_http::Request| {
        served.mark();
        let handler = handler.clone();
        let token = token.clone();
        async move {
            let req = from_lambda(&event);
            let resp = serve(function, token.as_ref().as_ref(), handler.as_ref(), req).await;
            let mut out = Response::builder()
                .status(resp.status)
                .header("content-type", resp.content_type)
                .header(
                    "cache-control",
                    // The docs function's answers (pages, the OpenAPI document) are the same for
                    // everyone until the next deploy; every other answer is live data.
                    if function == "docs" && resp.status == 200 {
                        "public, max-age=300"
                    } else {
                        "no-store"
                    },
                )
                .header("x-content-type-options", "nosniff");
            if resp.content_type.starts_with("text/html") {
                // The pages (console, Swagger UI) carry their script and styles inline and
                // talk only to this origin; nobody may frame them.
                out = out.header("content-security-policy", PAGE_CSP);
            }
            out.body(Body::Binary(resp.body))
                .map_err(|e| -> lambda_http::Error { Box::new(e) })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        by: String,
        #[serde(default)]
        force: bool,
        #[serde(default)]
        hotel_ids: Vec<i64>,
        #[serde(default)]
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    /// Which field a 400 for this body names.
    fn field_named(body: &str) -> String {
        let r = ApiRequest {
            body: body.as_bytes().to_vec(),
            ..Default::default()
        };
        match r.json::<Body>() {
            Err(ApiError::BadRequest { field, message, .. }) => {
                assert!(message.contains(&field), "{message} names {field}");
                field
            }
            other => panic!("{body}: expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_body_is_a_400_naming_the_field() {
        assert_eq!(field_named(r#"{"by": "ana", "force": "yes"}"#), "force");
        assert_eq!(field_named(r#"{"by": 5}"#), "by");
        assert_eq!(field_named(r#"{"force": true}"#), "by", "missing");
        assert_eq!(
            field_named(r#"{"by": "a", "hotel_ids": [1, "x"]}"#),
            "hotel_ids[1]"
        );
        assert_eq!(field_named(r#"{"by": "a", "inner": {}}"#), "inner.n");
        assert_eq!(field_named(r#"{"by": "a", "inner": {"n": -1}}"#), "inner.n");
        assert_eq!(
            field_named(r#"{"by": "a", "colour": 1}"#),
            "colour",
            "unknown"
        );
        assert_eq!(field_named(r#""text""#), "body");
        assert_eq!(
            field_named("[1]"),
            "[0]",
            "read as a tuple: its first element"
        );
        assert_eq!(field_named(r#"{"by": "a"} trailing"#), "body");
        assert_eq!(field_named("{"), "body");
    }

    struct Echo;
    #[async_trait]
    impl Handler for Echo {
        async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
            if req.query.contains_key("fail") {
                return Err(ApiError::bad_request(
                    "invalid_limit",
                    "limit must be 1..100",
                    "limit",
                ));
            }
            Ok(ApiResponse::ok(
                200,
                &serde_json::json!({ "op": format!("{op:?}"), "params": req.params }),
            ))
        }
    }

    fn req(method: &str, path: &str) -> ApiRequest {
        ApiRequest {
            method: method.into(),
            path: path.into(),
            authorization: Some("Bearer t0k".into()),
            ..Default::default()
        }
    }

    async fn call(function: &str, r: ApiRequest) -> (u16, serde_json::Value) {
        let resp = serve(function, Some(&Secret::new("t0k")), &Echo, r).await;
        (resp.status, serde_json::from_slice(&resp.body).unwrap())
    }

    #[tokio::test]
    async fn envelope_and_status_for_each_edge_case() {
        let (s, b) = call("logs", req("GET", "/api/v1/admin/sync/logs/abc")).await;
        assert_eq!(s, 200);
        assert_eq!(b["success"], true);
        assert_eq!(b["data"]["params"]["sync_id"], "abc");

        let mut no_auth = req("GET", "/api/v1/admin/sync/logs");
        no_auth.authorization = None;
        let (s, b) = call("logs", no_auth).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );

        let mut wrong = req("GET", "/api/v1/admin/sync/logs");
        wrong.authorization = Some("Bearer t0K".into());
        assert_eq!(call("logs", wrong).await.0, 401);

        let mut public = req("GET", "/api/v1/health");
        public.authorization = None;
        assert_eq!(call("health", public).await.0, 200);

        assert_eq!(
            call("logs", req("DELETE", "/api/v1/admin/sync/logs"))
                .await
                .0,
            405
        );
        assert_eq!(call("logs", req("GET", "/api/v1/nothing")).await.0, 404);
        // A route of another function is not served here.
        assert_eq!(
            call("logs", req("GET", "/api/v1/admin/sync/status"))
                .await
                .0,
            404
        );

        let mut big = req("PUT", "/api/v1/admin/sync/settings");
        big.content_type = Some("application/json".into());
        big.body = vec![b' '; MAX_BODY + 1];
        assert_eq!(call("settings", big).await.0, 413);

        let mut text = req("PUT", "/api/v1/admin/sync/settings");
        text.content_type = Some("text/plain".into());
        text.body = b"sync_interval=1h".to_vec();
        let (s, b) = call("settings", text).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (415, Some("unsupported_media_type"))
        );

        let mut bad = req("GET", "/api/v1/admin/sync/logs");
        bad.query.insert("fail".into(), "1".into());
        let (s, b) = call("logs", bad).await;
        assert_eq!(s, 400);
        assert_eq!(b["success"], false);
        assert_eq!(b["error"]["details"]["field"], "limit");
    }

    #[test]
    fn bearer_check_is_exact() {
        let t = Secret::new("abc");
        assert!(authorized(Some("Bearer abc"), &t));
        assert!(!authorized(Some("Bearer abcd"), &t));
        assert!(!authorized(Some("abc"), &t));
        assert!(!authorized(None, &t));
    }
}
