//! One route table: the watch router in Cargo.toml and the SAM template
//! must agree with shared/src/api/routes.rs; the template's tables with shared/src/adapters/tables.rs.

use cupid_sync::api::routes::ROUTES;
use std::collections::BTreeSet;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_watch_router_mirrors_the_route_table() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let router = doc["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("router table");
    let mut in_toml = BTreeSet::new();
    for (path, entries) in router {
        for e in entries.as_array().expect("array of {method, function}") {
            in_toml.insert(format!(
                "{} {} -> {}",
                e["method"].as_str().unwrap(),
                path,
                e["function"].as_str().unwrap()
            ));
        }
    }
    let in_code: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.function))
        .collect();
    assert_eq!(
        in_toml, in_code,
        "regenerate with `target/debug/devstack router`"
    );
}

/// Functions started by events rather than routes: the sync (schedule, trigger, its own
/// continuations) and the webhook delivery (the bus's rule).
const EVENT_DRIVEN: [&str; 2] = ["sync", "deliver"];

#[test]
fn every_function_crate_serves_at_least_one_route_or_is_event_driven() {
    let mut crates: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    for c in &crates {
        assert!(
            EVENT_DRIVEN.contains(&c.as_str()) || ROUTES.iter().any(|r| r.function == c),
            "functions/{c} serves no route"
        );
        let main =
            std::fs::read_to_string(root().join(format!("functions/{c}/src/main.rs"))).unwrap();
        assert!(
            main.lines().count() <= 15,
            "functions/{c}/src/main.rs must only wire"
        );
    }
    for r in ROUTES {
        assert!(
            crates.iter().any(|c| c == r.function),
            "{} {} names a missing function {}",
            r.method,
            r.path,
            r.function
        );
    }
}

fn template() -> serde_yaml::Value {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("template parses")
}

fn untag(v: &serde_yaml::Value) -> &serde_yaml::Value {
    match v {
        serde_yaml::Value::Tagged(t) => &t.value,
        other => other,
    }
}

fn s<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a serde_yaml::Value> {
    let mut cur = v;
    for p in path {
        cur = untag(cur).get(*p)?;
    }
    Some(untag(cur))
}

#[test]
fn the_template_routes_and_functions_match_the_route_table() {
    let t = template();
    let resources = s(&t, &["Resources"]).unwrap().as_mapping().unwrap();
    let mut routes = BTreeSet::new();
    let mut binaries = BTreeSet::new();
    let mut rules = BTreeSet::new();
    for (_, r) in resources {
        if s(r, &["Type"]).and_then(|x| x.as_str()) != Some("AWS::Serverless::Function") {
            continue;
        }
        let bin = s(r, &["Metadata", "BuildProperties", "Binary"])
            .and_then(|x| x.as_str())
            .expect("Binary named")
            .to_string();
        assert_eq!(
            s(r, &["Metadata", "BuildMethod"]).and_then(|x| x.as_str()),
            Some("rust-cargolambda")
        );
        assert_eq!(
            s(r, &["Properties", "CodeUri"]).and_then(|x| x.as_str()),
            Some(format!("../functions/{bin}").as_str())
        );
        if let Some(events) = s(r, &["Properties", "Events"]).and_then(|e| e.as_mapping()) {
            for (_, e) in events {
                let kind = s(e, &["Type"]).and_then(|x| x.as_str());
                if kind == Some("EventBridgeRule") {
                    assert!(
                        EVENT_DRIVEN.contains(&bin.as_str()),
                        "{bin} is not event driven"
                    );
                    assert_eq!(
                        s(e, &["Properties", "EventBusName"]).map(|x| format!("{x:?}")),
                        Some("String(\"SyncEventBus\")".into()),
                        "{bin}'s rule listens on the sync's bus"
                    );
                    rules.insert(bin.clone());
                    continue;
                }
                assert_eq!(kind, Some("HttpApi"));
                let m = s(e, &["Properties", "Method"])
                    .and_then(|x| x.as_str())
                    .unwrap();
                let p = s(e, &["Properties", "Path"])
                    .and_then(|x| x.as_str())
                    .unwrap();
                routes.insert(format!("{m} {p} -> {bin}"));
            }
        }
        binaries.insert(bin);
    }
    let in_code: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.function))
        .collect();
    assert_eq!(routes, in_code);
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(binaries, crates, "one template function per function crate");
    assert_eq!(
        rules,
        BTreeSet::from(["deliver".to_string()]),
        "the deliver function (and only it) is the bus's rule target"
    );
}

/// Every function is traced and has its log group (with the stack's retention) in the
/// template: none is left to Lambda's auto-created group that keeps logs forever.
#[test]
fn every_function_is_traced_and_has_a_log_group_with_retention() {
    let t = template();
    assert_eq!(
        s(&t, &["Globals", "Function", "Tracing"]).and_then(|x| x.as_str()),
        Some("Active")
    );
    let resources = s(&t, &["Resources"]).unwrap().as_mapping().unwrap();
    let groups: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| s(r, &["Type"]).and_then(|x| x.as_str()) == Some("AWS::Logs::LogGroup"))
        .filter(|(_, r)| s(r, &["Properties", "RetentionInDays"]).is_some())
        .filter_map(|(name, _)| name.as_str().map(str::to_string))
        .collect();
    for (name, r) in resources {
        if s(r, &["Type"]).and_then(|x| x.as_str()) == Some("AWS::Serverless::Function") {
            let name = name.as_str().unwrap();
            let group = s(r, &["Properties", "LoggingConfig", "LogGroup"])
                .and_then(|x| x.as_str())
                .unwrap_or_else(|| panic!("{name} names no log group"));
            assert!(
                groups.contains(group),
                "{name} logs to {group}, not a log group with a retention"
            );
        }
    }
}

#[test]
fn the_template_tables_match_the_code_table_definitions() {
    use cupid_sync::adapters::tables::{ALL, Key};
    let t = template();
    let key_schema = |v: &serde_yaml::Value| -> Vec<(String, String)> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    s(k, &["AttributeName"])
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                    s(k, &["KeyType"]).unwrap().as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expect = |pk: Key, sk: Option<Key>| -> Vec<(String, String)> {
        let mut v = vec![(pk.name.to_string(), "HASH".to_string())];
        v.extend(sk.map(|k| (k.name.to_string(), "RANGE".to_string())));
        v
    };
    for def in ALL {
        let table = s(&t, &["Resources", def.logical_id])
            .unwrap_or_else(|| panic!("template lacks {}", def.logical_id));
        assert_eq!(
            s(table, &["Type"]).and_then(|x| x.as_str()),
            Some("AWS::DynamoDB::Table")
        );
        assert_eq!(
            s(table, &["Properties", "BillingMode"]).and_then(|x| x.as_str()),
            Some("PAY_PER_REQUEST")
        );
        assert_eq!(
            key_schema(s(table, &["Properties", "KeySchema"]).unwrap()),
            expect(def.pk, def.sk),
            "{}",
            def.logical_id
        );
        let attrs: BTreeSet<(String, String)> = s(table, &["Properties", "AttributeDefinitions"])
            .unwrap()
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    s(a, &["AttributeName"])
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                    s(a, &["AttributeType"])
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        let mut want = BTreeSet::new();
        for k in [
            Some(def.pk),
            def.sk,
            def.gsi.map(|g| g.pk),
            def.gsi.and_then(|g| g.sk),
        ]
        .into_iter()
        .flatten()
        {
            want.insert((k.name.to_string(), k.kind.as_str().to_string()));
        }
        assert_eq!(attrs, want, "{} attribute definitions", def.logical_id);
        match def.gsi {
            None => assert!(s(table, &["Properties", "GlobalSecondaryIndexes"]).is_none()),
            Some(g) => {
                let idx = &s(table, &["Properties", "GlobalSecondaryIndexes"])
                    .unwrap()
                    .as_sequence()
                    .unwrap()[0];
                assert_eq!(
                    s(idx, &["IndexName"]).and_then(|x| x.as_str()),
                    Some(g.name)
                );
                assert_eq!(
                    key_schema(s(idx, &["KeySchema"]).unwrap()),
                    expect(g.pk, g.sk)
                );
            }
        }
        assert_eq!(
            s(
                table,
                &["Properties", "TimeToLiveSpecification", "AttributeName"]
            )
            .and_then(|x| x.as_str()),
            def.ttl_attribute
        );
        assert!(
            s(
                table,
                &[
                    "Properties",
                    "PointInTimeRecoverySpecification",
                    "PointInTimeRecoveryEnabled"
                ]
            )
            .and_then(|x| x.as_bool())
            .unwrap_or(false)
        );
        let env_ref = s(
            &t,
            &[
                "Globals",
                "Function",
                "Environment",
                "Variables",
                def.env_var,
            ],
        )
        .and_then(|x| x.as_str());
        assert_eq!(
            env_ref,
            Some(def.logical_id),
            "{} must be given to the functions as !Ref {}",
            def.env_var,
            def.logical_id
        );
    }
}

/// The schedule in the template and the one the API writes send the same input, and it names
/// the slot (so a slot delivered twice runs once); the sync function retries failed deliveries
/// and sends what still fails to a queue with an alarm.
#[test]
fn the_schedule_names_its_slot_and_failed_syncs_are_caught() {
    use cupid_sync::adapters::aws::SCHEDULED_INPUT;
    use cupid_sync::domain::run::SyncRequest;
    let t = template();
    let res = s(&t, &["Resources"]).unwrap();
    let input = s(res, &["SyncSchedule", "Properties", "Target", "Input"])
        .and_then(|v| v.as_str())
        .unwrap();
    assert_eq!(input, SCHEDULED_INPUT);
    let filled = input.replace("<aws.scheduler.scheduled-time>", "2026-11-30T12:00:00Z");
    assert_eq!(
        serde_json::from_str::<SyncRequest>(&filled).unwrap(),
        SyncRequest::Scheduled {
            scheduled_time: Some("2026-11-30T12:00:00Z".into())
        }
    );
    let invoke = s(res, &["SyncFunction", "Properties", "EventInvokeConfig"]).unwrap();
    assert_eq!(
        s(invoke, &["MaximumRetryAttempts"]).and_then(|v| v.as_u64()),
        Some(2)
    );
    assert!(s(invoke, &["DestinationConfig", "OnFailure", "Destination"]).is_some());
    for alarm in ["ScheduleDeadLetterAlarm", "SyncFailedInvocationsAlarm"] {
        assert!(
            s(res, &[alarm, "Properties", "MetricName"]).is_some(),
            "{alarm}"
        );
    }
}
