//! The single route table. The watch router (Cargo.toml), the SAM template and the OpenAPI
//! document are checked against it by tests.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    PublicHealth,
    AdminHealth,
    Trigger,
    Status,
    Metrics,
    Logs,
    LogDetail,
    SettingsGet,
    SettingsPut,
    ScheduleStart,
    ScheduleStop,
    Track,
    Untrack,
    PropertyGet,
    PropertyReviews,
    QuarantineList,
    QuarantineGet,
    QuarantineAccept,
    QuarantineDiscard,
    WebhookList,
    WebhookCreate,
    WebhookDelete,
    WebhookDeliveries,
    Console,
    DocsPage,
    DocsSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Path template; parameters as `{name}` (matchit syntax, as the watch router uses).
    pub path: &'static str,
    /// The function (binary) that serves it.
    pub function: &'static str,
    pub auth: bool,
    pub op: Op,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    function: &'static str,
    auth: bool,
    op: Op,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        function,
        auth,
        op,
        summary,
    }
}

pub const ROUTES: &[Route] = &[
    r(
        "GET",
        "/api/v1/health",
        "health",
        false,
        Op::PublicHealth,
        "Liveness of the API",
    ),
    r(
        "GET",
        "/api/v1/admin/sync/health",
        "health",
        true,
        Op::AdminHealth,
        "Sync health: healthy, degraded, unhealthy (503) or stopped",
    ),
    r(
        "POST",
        "/api/v1/admin/sync",
        "trigger",
        true,
        Op::Trigger,
        "Start a sync now (202); 409 while one runs",
    ),
    r(
        "GET",
        "/api/v1/admin/sync/status",
        "status",
        true,
        Op::Status,
        "Sync status and live progress",
    ),
    r(
        "GET",
        "/api/v1/admin/sync/metrics",
        "status",
        true,
        Op::Metrics,
        "Prometheus metrics (text exposition format 0.0.4)",
    ),
    r(
        "GET",
        "/api/v1/admin/sync/logs",
        "logs",
        true,
        Op::Logs,
        "Sync runs, newest first (?limit=&cursor= or &offset=)",
    ),
    r(
        "GET",
        "/api/v1/admin/sync/logs/{sync_id}",
        "logs",
        true,
        Op::LogDetail,
        "One sync run and a page of its changed and failed properties (?limit=&after=)",
    ),
    r(
        "GET",
        "/api/v1/admin/sync/settings",
        "settings",
        true,
        Op::SettingsGet,
        "Current settings",
    ),
    r(
        "PUT",
        "/api/v1/admin/sync/settings",
        "settings",
        true,
        Op::SettingsPut,
        "Change settings (all or nothing)",
    ),
    r(
        "POST",
        "/api/v1/admin/sync/start",
        "schedule",
        true,
        Op::ScheduleStart,
        "Enable the schedule (?interval=24h)",
    ),
    r(
        "POST",
        "/api/v1/admin/sync/stop",
        "schedule",
        true,
        Op::ScheduleStop,
        "Disable the schedule",
    ),
    r(
        "PUT",
        "/api/v1/admin/properties",
        "properties",
        true,
        Op::Track,
        "Track hotel ids",
    ),
    r(
        "DELETE",
        "/api/v1/admin/properties/{id}",
        "properties",
        true,
        Op::Untrack,
        "Stop tracking a hotel id (data kept)",
    ),
    r(
        "GET",
        "/api/v1/properties/{id}",
        "properties",
        true,
        Op::PropertyGet,
        "One property: sync record and document (?lang=fr for a translation)",
    ),
    r(
        "GET",
        "/api/v1/properties/{id}/reviews",
        "properties",
        true,
        Op::PropertyReviews,
        "A property's synced reviews, newest first (?limit=&offset=)",
    ),
    r(
        "GET",
        "/api/v1/admin/quarantine",
        "properties",
        true,
        Op::QuarantineList,
        "Quarantined properties: held payloads and the rules they broke (?limit=&after=&rule=)",
    ),
    r(
        "GET",
        "/api/v1/admin/quarantine/{hotel_id}",
        "properties",
        true,
        Op::QuarantineGet,
        "One quarantined property: its violations and held payloads",
    ),
    r(
        "POST",
        "/api/v1/admin/quarantine/{hotel_id}/accept",
        "properties",
        true,
        Op::QuarantineAccept,
        "Accept the held payloads despite their contract ({\"by\": name}); the next sync stores them",
    ),
    r(
        "DELETE",
        "/api/v1/admin/quarantine/{hotel_id}",
        "properties",
        true,
        Op::QuarantineDiscard,
        "Discard the held payloads; the next sync checks the property again",
    ),
    r(
        "GET",
        "/api/v1/admin/webhooks",
        "settings",
        true,
        Op::WebhookList,
        "Webhooks: where events are sent (secrets are never shown again)",
    ),
    r(
        "POST",
        "/api/v1/admin/webhooks",
        "settings",
        true,
        Op::WebhookCreate,
        "Add a webhook ({\"url\", \"events\": [...], \"description\"}); 201 with its signing secret, shown once",
    ),
    r(
        "DELETE",
        "/api/v1/admin/webhooks/{webhook_id}",
        "settings",
        true,
        Op::WebhookDelete,
        "Remove a webhook",
    ),
    r(
        "GET",
        "/api/v1/admin/webhooks/{webhook_id}/deliveries",
        "settings",
        true,
        Op::WebhookDeliveries,
        "A webhook's delivery attempts, newest first (?limit=)",
    ),
    r(
        "GET",
        "/console",
        "docs",
        false,
        Op::Console,
        "Operator console (one page; signs in with the admin token)",
    ),
    r("GET", "/docs", "docs", false, Op::DocsPage, "Swagger UI"),
    r(
        "GET",
        "/docs/swagger.json",
        "docs",
        false,
        Op::DocsSpec,
        "OpenAPI 3 document",
    ),
];

/// Matches a concrete path against a template; returns the parameters.
pub fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ts, ps) in t.iter().zip(p.iter()) {
        if let Some(name) = ts.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            if ps.is_empty() {
                return None;
            }
            params.push((name.to_string(), ps.to_string()));
        } else if ts != ps {
            return None;
        }
    }
    Some(params)
}

pub enum Resolved {
    Found(&'static Route, Vec<(String, String)>),
    WrongMethod(Vec<&'static str>),
    NotFound,
}

pub fn resolve(method: &str, path: &str) -> Resolved {
    let mut allowed = Vec::new();
    // Literal segments win over parameters (e.g. a future /logs/summary over /logs/{sync_id}).
    let mut best: Option<(&'static Route, Vec<(String, String)>)> = None;
    for route in ROUTES {
        if let Some(params) = match_path(route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                if best.as_ref().is_none_or(|(_, p)| params.len() < p.len()) {
                    best = Some((route, params));
                }
            } else {
                allowed.push(route.method);
            }
        }
    }
    match best {
        Some((r, p)) => Resolved::Found(r, p),
        None if !allowed.is_empty() => Resolved::WrongMethod(allowed),
        None => Resolved::NotFound,
    }
}

/// The `[workspace.metadata.lambda.watch.router]` table this route table implies.
pub fn watch_router_toml() -> String {
    let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    paths.dedup();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::from("[workspace.metadata.lambda.watch.router]\n");
    for p in paths {
        if !seen.insert(p) {
            continue;
        }
        let entries: Vec<String> = ROUTES
            .iter()
            .filter(|r| r.path == p)
            .map(|r| {
                format!(
                    "{{ method = \"{}\", function = \"{}\" }}",
                    r.method, r.function
                )
            })
            .collect();
        out.push_str(&format!("\"{}\" = [{}]\n", p, entries.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_literals_params_wrong_methods_and_unknown_paths() {
        match resolve("GET", "/api/v1/admin/sync/logs/01HX") {
            Resolved::Found(r, p) => {
                assert_eq!(r.op, Op::LogDetail);
                assert_eq!(p, vec![("sync_id".to_string(), "01HX".to_string())]);
            }
            _ => panic!("not found"),
        }
        assert!(
            matches!(resolve("GET", "/api/v1/admin/sync/logs"), Resolved::Found(r, _) if r.op == Op::Logs)
        );
        assert!(
            matches!(resolve("DELETE", "/api/v1/admin/sync/status"), Resolved::WrongMethod(m) if m == vec!["GET"])
        );
        assert!(matches!(
            resolve("GET", "/api/v1/admin/sync/status/"),
            Resolved::NotFound
        ));
        assert!(matches!(
            resolve("GET", "/api/v1/properties/"),
            Resolved::NotFound
        ));
        assert!(matches!(resolve("GET", "/nope"), Resolved::NotFound));
    }

    #[test]
    fn every_route_is_unique_and_public_routes_are_only_health_and_docs() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
            if !a.auth {
                assert!(
                    a.path == "/api/v1/health"
                        || a.path.starts_with("/docs")
                        || a.path == "/console",
                    "{} is public",
                    a.path
                );
            }
        }
    }
}
