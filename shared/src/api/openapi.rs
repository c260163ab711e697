//! OpenAPI 3 document built from the route table (paths) and the Rust types (schemas, by
//! utoipa), and a Swagger UI page whose assets are compiled in (utoipa-swagger-ui `vendored`).

use super::routes::{Op, ROUTES};
use super::{ApiError, ApiResponse};
use serde_json::{Value, json};
use utoipa::{PartialSchema, ToSchema};

fn schema_of<T: ToSchema + PartialSchema>() -> (String, Value) {
    (
        T::name().to_string(),
        serde_json::to_value(T::schema()).unwrap_or(Value::Null),
    )
}

fn params_of(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if name == "id" || name == "hotel_id" {
                json!({"type": "integer", "minimum": 1, "maximum": 9007199254740991i64})
            } else {
                json!({"type": "string", "minLength": 1, "maxLength": 64})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn extra_params(op: Op) -> Vec<Value> {
    match op {
        Op::Logs => vec![
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}}),
            json!({"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}}),
            json!({"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"}, "description": "next_cursor of the previous page (not with offset)"}),
        ],
        Op::LogDetail => vec![
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}}),
            json!({"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "next_after of the previous page"}),
        ],
        Op::PropertyGet => vec![
            json!({"name": "lang", "in": "query", "schema": {"type": "string", "enum": crate::domain::settings::LANGUAGES}, "description": "a synced translation instead of the property"}),
        ],
        Op::PropertyReviews => vec![
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}),
            json!({"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}}),
        ],
        Op::QuarantineList => vec![
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}}),
            json!({"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "next_after of the previous page"}),
            json!({"name": "rule", "in": "query", "schema": {"type": "string", "enum": crate::domain::contract::Rule::ALL.map(|r| r.as_str())}}),
        ],
        Op::WebhookDeliveries => vec![
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}),
        ],
        Op::ScheduleStart => vec![
            json!({"name": "interval", "in": "query", "schema": {"type": "string", "example": "24h"}}),
        ],
        _ => vec![],
    }
}

fn request_body(op: Op) -> Option<Value> {
    let schema = match op {
        Op::Trigger => json!({"type": "object", "additionalProperties": false, "properties": {
            "hotel_ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 1000, "minItems": 1},
            "dry_run": {"type": "boolean"},
            "force": {"type": "boolean", "description": "accept a change the circuit breaker would halt"}}}),
        Op::SettingsPut => {
            json!({"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/SettingChange"}})
        }
        Op::Track => {
            json!({"type": "object", "required": ["hotel_ids"], "additionalProperties": false, "properties": {
            "hotel_ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": super::app::MAX_TRACK_IDS}}})
        }
        Op::QuarantineAccept => {
            json!({"type": "object", "required": ["by", "quarantined_by_sync"], "additionalProperties": false, "properties": {
            "by": {"type": "string", "minLength": 1, "maxLength": 100, "description": "who accepts (kept in the run log)"},
            "quarantined_by_sync": {"type": "string", "minLength": 1, "maxLength": 64, "description": "the run whose held payloads were read (GET .../quarantine/{hotel_id})"}}})
        }
        Op::WebhookCreate => {
            json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
            "url": {"type": "string", "format": "uri", "maxLength": crate::domain::webhook::MAX_URL_LEN, "description": "https (http only to a loopback receiver in local mode); private, loopback and link-local targets are refused"},
            "events": {"type": "array", "items": {"type": "string", "enum": crate::domain::webhook::EventKind::ALL.map(|e| e.as_str())}, "description": "empty or absent: every event"},
            "description": {"type": "string", "maxLength": crate::domain::webhook::MAX_DESCRIPTION_LEN}}})
        }
        _ => return None,
    };
    Some(
        json!({"required": op != Op::Trigger, "content": {"application/json": {"schema": schema}}}),
    )
}

/// The schema of a route's `data` on success, where the handler returns a typed view.
fn data_schema(op: Op) -> Option<Value> {
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    Some(match op {
        Op::AdminHealth => r("Health"),
        Op::Trigger => r("Triggered"),
        Op::Status => r("StatusView"),
        Op::Logs => r("RunPage"),
        Op::LogDetail => r("RunLogDetail"),
        Op::SettingsGet | Op::SettingsPut => json!({"type": "array", "items": r("SettingRow")}),
        Op::ScheduleStart | Op::ScheduleStop => r("ScheduleView"),
        Op::Track => r("TrackResponse"),
        Op::WebhookList => r("WebhookList"),
        Op::WebhookCreate => r("CreatedWebhook"),
        Op::WebhookDeliveries => r("DeliveryLog"),
        Op::QuarantineList => r("QuarantinePage"),
        Op::QuarantineGet | Op::QuarantineAccept => r("QuarantineEntry"),
        Op::QuarantineDiscard => r("Discarded"),
        _ => return None,
    })
}

/// OpenAPI links: what a client (and schemathesis' stateful phase) may call next with what a
/// response returned, so two-step failures are found (store a setting, then read status).
fn links(op: Op) -> Option<Value> {
    let to = |op: &str| json!({"operationId": op});
    Some(match op {
        Op::Trigger => json!({
            "GetRunLog": {"operationId": "LogDetail", "parameters": {"sync_id": "$response.body#/data/sync_id"}},
            "GetStatus": to("Status"),
        }),
        Op::SettingsPut => json!({
            "GetStatus": to("Status"), "GetHealth": to("AdminHealth"),
            "GetMetrics": to("Metrics"), "GetSettings": to("SettingsGet"),
        }),
        Op::ScheduleStart | Op::ScheduleStop => {
            json!({"GetStatus": to("Status"), "GetHealth": to("AdminHealth")})
        }
        Op::WebhookCreate => json!({
            "GetDeliveries": {"operationId": "WebhookDeliveries", "parameters": {"webhook_id": "$response.body#/data/id"}},
            "DeleteWebhook": {"operationId": "WebhookDelete", "parameters": {"webhook_id": "$response.body#/data/id"}},
        }),
        Op::Track => json!({"GetStatus": to("Status")}),
        _ => return None,
    })
}

/// The OpenAPI 3 document.
pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        let ok = match r.op {
            Op::Trigger => "202",
            Op::WebhookCreate => "201",
            _ => "200",
        };
        let success = match data_schema(r.op) {
            Some(data) => json!({"allOf": [{"$ref": "#/components/schemas/Envelope"},
                {"type": "object", "required": ["data"], "properties": {"data": data}}]}),
            None => json!({"$ref": "#/components/schemas/Envelope"}),
        };
        let mut responses = json!({ ok: {"description": "Success", "content": {"application/json": {"schema": success}}}});
        if let Some(l) = links(r.op) {
            responses[ok]["links"] = l;
        }
        for (code, what) in [
            ("400", "Bad input"),
            ("401", "Missing or wrong token"),
            ("404", "Unknown id"),
            ("409", "Conflict"),
            ("413", "Body over 256 KiB"),
            ("415", "Body is not JSON"),
            ("503", "Unhealthy or dependency down"),
        ] {
            if !r.auth && (code == "401" || code == "409") {
                continue;
            }
            responses[code] = json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}});
        }
        if matches!(r.op, Op::DocsPage) {
            responses = json!({"200": {"description": "Swagger UI", "content": {"text/html": {}}}});
        }
        if matches!(r.op, Op::Console) {
            responses = json!({"200": {"description": "The operator console", "content": {"text/html": {}}}});
        }
        if matches!(r.op, Op::Metrics) {
            responses["200"] = json!({"description": "Prometheus text exposition format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}}});
        }
        if matches!(r.op, Op::DocsSpec) {
            responses = json!({"200": {"description": "This document", "content": {"application/json": {}}}});
        }
        let mut operation = json!({
            "operationId": format!("{:?}", r.op),
            "summary": r.summary,
            "tags": [r.function],
            "responses": responses,
        });
        let mut params = params_of(r.path);
        params.extend(extra_params(r.op));
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        if let Some(body) = request_body(r.op) {
            operation["requestBody"] = body;
        }
        if r.auth {
            operation["security"] = json!([{"bearer": []}]);
        }
        entry[r.method.to_ascii_lowercase()] = operation;
    }
    let mut schemas = serde_json::Map::new();
    for (name, schema) in [
        schema_of::<super::app::RunView>(),
        schema_of::<crate::domain::drift::FacetDrift>(),
        schema_of::<crate::domain::drift::PathDrift>(),
        schema_of::<crate::domain::settings::SettingRow>(),
        schema_of::<crate::domain::settings::SettingChange>(),
        schema_of::<crate::domain::health::Health>(),
        schema_of::<crate::domain::health::HealthStatus>(),
        schema_of::<crate::domain::drift::DriftCount>(),
        schema_of::<crate::domain::run::RunDetail>(),
        schema_of::<super::wire::StatusView>(),
        schema_of::<super::wire::LastRun>(),
        schema_of::<super::wire::CurrentRun>(),
        schema_of::<super::wire::Paused>(),
        schema_of::<super::wire::RunPage>(),
        schema_of::<super::wire::RunLogDetail>(),
        schema_of::<super::wire::Triggered>(),
        schema_of::<super::wire::ScheduleView>(),
        schema_of::<super::wire::TrackResponse>(),
        schema_of::<crate::domain::run::Failure>(),
        schema_of::<crate::domain::run::Change>(),
        schema_of::<super::app::WebhookView>(),
        schema_of::<super::app::CreatedWebhook>(),
        schema_of::<super::app::WebhookList>(),
        schema_of::<super::app::DeliveryLog>(),
        schema_of::<crate::domain::webhook::Delivery>(),
        schema_of::<super::wire::QuarantinePage>(),
        schema_of::<super::wire::QuarantineEntry>(),
        schema_of::<super::wire::HeldFacetView>(),
        schema_of::<super::wire::AcceptedView>(),
        schema_of::<super::wire::Discarded>(),
        schema_of::<crate::domain::contract::Violation>(),
        schema_of::<crate::domain::contract::Rule>(),
    ] {
        schemas.insert(name, schema);
    }
    schemas.insert("Envelope".into(), json!({"type": "object", "required": ["success", "data"], "properties": {"success": {"type": "boolean"}, "data": {}}}));
    schemas.insert(
        "ErrorEnvelope".into(),
        json!({"type": "object", "required": ["success", "error"], "properties": {"success": {"type": "boolean"}, "error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}}),
    );
    json!({
        // 3.1: the schemas utoipa derives use JSON Schema 2020-12 (`"type": ["string", "null"]`).
        "openapi": "3.1.0",
        "info": {"title": "cupid-sync admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Keeps a DynamoDB catalogue of hotel properties in step with the Cupid content API."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}

fn asset(name: &str) -> Result<String, ApiError> {
    let config = std::sync::Arc::new(utoipa_swagger_ui::Config::from("/docs/swagger.json"));
    let file = utoipa_swagger_ui::serve(name, config)
        .map_err(|e| ApiError::Internal(format!("swagger ui asset {name}: {e}")))?
        .ok_or_else(|| ApiError::Internal(format!("swagger ui asset {name} is missing")))?;
    Ok(String::from_utf8_lossy(&file.bytes).into_owned())
}

/// The Swagger UI page, self-contained (assets inlined: the route table has one page route).
pub fn page() -> Result<String, ApiError> {
    let css = asset("swagger-ui.css")?;
    let js = asset("swagger-ui-bundle.js")?.replace("</script", "<\\/script");
    Ok(format!(
        r##"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>cupid-sync API</title><style>{css}</style></head>
<body><div id="swagger-ui"></div><script>{js}</script>
<script>window.ui = SwaggerUIBundle({{ url: "/docs/swagger.json", dom_id: "#swagger-ui", deepLinking: true }});</script></body></html>"##
    ))
}

/// The docs function's handler: the OpenAPI document and the Swagger UI page, nothing else.
pub struct DocsHandler;

#[async_trait::async_trait]
impl super::Handler for DocsHandler {
    async fn handle(&self, op: Op, _: &super::ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::DocsPage | Op::DocsSpec | Op::Console => serve(op),
            _ => Err(ApiError::NotFound("not a docs route".into())),
        }
    }
}

pub fn serve(op: Op) -> Result<ApiResponse, ApiError> {
    match op {
        Op::DocsSpec => Ok(ApiResponse::raw(
            200,
            "application/json",
            spec_bytes().to_vec(),
        )),
        Op::Console => Ok(ApiResponse::raw(
            200,
            "text/html; charset=utf-8",
            CONSOLE.as_bytes().to_vec(),
        )),
        _ => Ok(ApiResponse::raw(
            200,
            "text/html; charset=utf-8",
            cached_page()?.as_bytes().to_vec(),
        )),
    }
}

/// The document, rendered once per cold start.
fn spec_bytes() -> &'static [u8] {
    static SPEC: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| serde_json::to_vec(&spec()).unwrap_or_default())
}

/// The Swagger UI page (1.7 MB with its assets inlined), built once per cold start.
fn cached_page() -> Result<&'static str, ApiError> {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(p) = PAGE.get() {
        return Ok(p);
    }
    let built = page()?;
    Ok(PAGE.get_or_init(|| built))
}

/// The operator console: one page, its styles and script inline (no CDN, no build step).
pub const CONSOLE: &str = include_str!("../../assets/console.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_spec_and_nothing_else() {
        let spec = spec();
        let paths = spec["paths"].as_object().unwrap();
        let mut in_spec = Vec::new();
        for (p, item) in paths {
            for m in item.as_object().unwrap().keys() {
                in_spec.push(format!("{} {p}", m.to_uppercase()));
            }
        }
        let mut in_table: Vec<String> = ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        in_spec.sort();
        in_table.sort();
        assert_eq!(in_spec, in_table);
        assert!(spec["components"]["schemas"]["RunView"].is_object());
    }

    /// Every query parameter a handler reads (`req.query.get("…")`) is declared for some
    /// route, and the property routes declare theirs.
    #[test]
    fn the_query_parameters_handlers_read_are_declared() {
        let spec = spec();
        let declared: std::collections::BTreeSet<String> = spec["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .flat_map(|op| op["parameters"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        let sources = [
            include_str!("app/properties.rs"),
            include_str!("app/quarantine.rs"),
            include_str!("app/settings.rs"),
            include_str!("app/status.rs"),
            include_str!("app/trigger.rs"),
            include_str!("app/metrics.rs"),
            include_str!("app/webhooks.rs"),
        ];
        for src in sources {
            for (i, _) in src.match_indices("query.get(\"") {
                let rest = &src[i + "query.get(\"".len()..];
                let name = &rest[..rest.find('"').unwrap()];
                assert!(
                    declared.contains(name),
                    "query parameter `{name}` is not declared"
                );
            }
        }
        let params = |path: &str| -> Vec<String> {
            spec["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(params("/api/v1/properties/{id}"), ["id", "lang"]);
        assert_eq!(
            params("/api/v1/properties/{id}/reviews"),
            ["id", "limit", "offset"]
        );
    }

    /// Every `$ref` in the document names a schema it declares (a typed response is only
    /// useful to a client generator when its whole tree resolves).
    #[test]
    fn every_schema_reference_resolves() {
        let spec = spec();
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&spec, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
        let status = &spec["paths"]["/api/v1/admin/sync/status"]["get"]["responses"]["200"];
        assert!(status.to_string().contains("StatusView"), "{status}");
        // Every link names an operation of the document.
        let ops: Vec<String> = ROUTES.iter().map(|r| format!("{:?}", r.op)).collect();
        for item in spec["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for resp in op["responses"].as_object().unwrap().values() {
                    for link in resp["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        let target = link["operationId"].as_str().unwrap();
                        assert!(ops.iter().any(|o| o == target), "link to {target}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_console_is_one_small_self_contained_page() {
        assert!(CONSOLE.len() <= 200 * 1024, "{} bytes", CONSOLE.len());
        assert!(CONSOLE.contains("/api/v1/admin/sync/status"));
        for external in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "@import",
        ] {
            assert!(!CONSOLE.contains(external), "the console loads {external}");
        }
        // The token goes in a header, from sessionStorage; never into a URL.
        assert!(CONSOLE.contains("sessionStorage") && CONSOLE.contains("Bearer"));
        assert!(!CONSOLE.contains("localStorage"));
    }

    #[test]
    fn the_page_is_self_contained() {
        let html = page().unwrap();
        assert!(html.contains("SwaggerUIBundle") && html.contains("/docs/swagger.json"));
        for external in ["src=\"http", "href=\"http", "src='http", "href='http"] {
            assert!(
                !html.contains(external),
                "the page must not load anything from the internet ({external})"
            );
        }
    }
}
