//! Schema drift end to end over DynamoDB (moto) and the Cupid simulator: the first sync sets
//! the baseline; a run that meets a changed response shape reports what appeared and what
//! disappeared (counts, example hotels) in its run log and as `SchemaChanged`, once; with
//! `sync_schema_policy = freeze` a document with a new shape is quarantined (rule `schema`)
//! until an operator accepts it, and the accepted shape joins the baseline.

use cupid_sim::{ChangeRequest, Faults, IdFault};
use cupid_sync::domain::drift::FacetDrift;
use cupid_sync::domain::run::RunStatus;
use cupid_sync::domain::settings::SchemaPolicy;
use cupid_sync::domain::settings::{SettingKey, SettingValue};
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::{SchemaStore, SettingsStore};
use integration::{Stack, api_call};
use std::collections::HashMap;

fn reshape() -> IdFault {
    IdFault {
        kind: "reshape".into(),
        times: 0,
        path_contains: None,
    }
}

/// Upstream serves `reshaped` ids reshaped and `sprouted` ids with a new `loyalty` section.
fn shapes(s: &Stack, reshaped: &[i64], sprouted: &[i64]) {
    let mut per_id: HashMap<i64, IdFault> = reshaped.iter().map(|id| (*id, reshape())).collect();
    for id in sprouted {
        let sprout = IdFault {
            kind: "sprout".into(),
            times: 0,
            path_contains: Some("/v3.0/property/".into()),
        };
        per_id.insert(*id, sprout);
    }
    s.sim.sim.set_faults(Faults {
        per_id,
        ..Default::default()
    });
}

fn drift_of<'a>(d: &'a [FacetDrift], facet: &str) -> &'a FacetDrift {
    d.iter()
        .find(|f| f.facet == facet)
        .unwrap_or_else(|| panic!("no {facet} drift in {d:?}"))
}

fn schema_events(s: &Stack) -> Vec<serde_json::Value> {
    s.events
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.detail_type == "SchemaChanged")
        .map(|e| e.detail.clone())
        .collect()
}

#[tokio::test]
async fn drift_is_reported_once_and_a_frozen_schema_holds_new_shapes_until_accepted() {
    let (s, ids, first) = Stack::synced_with_french().await;
    assert!(first.drift.is_empty(), "the first sync sets the baseline");
    let baseline = s.schemas.baseline().await.unwrap().expect("a baseline");
    assert_eq!(baseline.updated_by, first.sync_id);
    assert_eq!(baseline.shapes["property"].docs, 100);
    assert_eq!(baseline.shapes["lang"].docs, 100);
    assert!(schema_events(&s).is_empty());

    // Upstream's response shape changes for 30 properties (property and translation): a new
    // `sustainability` section, no `airport_code`.
    let reshaped: Vec<i64> = ids[..30].to_vec();
    shapes(&s, &reshaped, &[]);
    let second = s.sync().await;
    assert_eq!(
        second.status,
        RunStatus::Completed,
        "{:?}",
        second.error_message
    );
    assert_eq!(
        (second.counters.updated, second.counters.quarantined),
        (30, 0)
    );
    for kind in ["property", "lang"] {
        let d = drift_of(&second.drift, kind);
        assert_eq!(d.documents, 30);
        let appeared: Vec<&str> = d.appeared.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            appeared,
            ["sustainability"],
            "{kind}: only the topmost new path"
        );
        assert_eq!(d.appeared[0].count, 30);
        assert_eq!(d.appeared[0].examples.len(), 3);
        assert!(d.appeared[0].examples.iter().all(|e| reshaped.contains(e)));
        let gone: Vec<&str> = d.disappeared.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(gone, ["airport_code"], "{kind}");
        assert!(d.type_changed.is_empty());
    }
    let events = schema_events(&s);
    assert_eq!(events.len(), 1, "one SchemaChanged");
    assert_eq!(events[0]["sync_id"], second.sync_id.as_str());
    // The run log says it too.
    let (code, log) = api_call(
        &s,
        "GET",
        &format!("/api/v1/admin/sync/logs/{}", second.sync_id),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        log["data"]["schema_drift"][0]["appeared"][0]["path"], "sustainability",
        "{log}"
    );

    // Reported once: the same shapes again (and more documents of the new shape) report
    // nothing new.
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: ids[..40].to_vec(),
        ..Default::default()
    });
    let third = s.sync().await;
    assert_eq!(third.counters.updated, 40);
    assert!(third.drift.is_empty(), "{:?}", third.drift);
    assert_eq!(schema_events(&s).len(), 1);

    // Frozen: a shape the baseline lacks is held (rule `schema`), the rest goes on.
    s.settings
        .put_all(
            &[(
                SettingKey::SyncSchemaPolicy,
                SettingValue::Policy(SchemaPolicy::Freeze),
            )],
            Timestamp(0),
        )
        .await
        .unwrap();
    let (held, plain) = (ids[50], ids[51]);
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![held, plain],
        ..Default::default()
    });
    shapes(&s, &reshaped, &[held]);
    let fourth = s.sync().await;
    assert_eq!(
        (fourth.counters.updated, fourth.counters.quarantined),
        (1, 1),
        "{:?}",
        s.failures(&fourth).await
    );
    let (_, entry) = api_call(&s, "GET", &format!("/api/v1/admin/quarantine/{held}"), None).await;
    let violations: Vec<serde_json::Value> = entry["data"]["facets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["violations"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        !violations.is_empty()
            && violations
                .iter()
                .all(|v| v["rule"] == "schema" && v["path"] == "loyalty"),
        "{violations:?}"
    );
    let (_, listed) = api_call(&s, "GET", "/api/v1/admin/quarantine?rule=schema", None).await;
    assert_eq!(listed["data"]["items"][0]["hotel_id"], held, "{listed}");
    // An operator accepts it: stored, and the baseline learns the shape.
    let body = serde_json::json!({"by": "ops", "quarantined_by_sync": fourth.sync_id});
    let (code, r) = api_call(
        &s,
        "POST",
        &format!("/api/v1/admin/quarantine/{held}/accept"),
        Some(body),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let fifth = s.sync().await;
    assert_eq!(fifth.counters.updated, 1, "{:?}", s.failures(&fifth).await);
    let appeared: Vec<&str> = drift_of(&fifth.drift, "property")
        .appeared
        .iter()
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(appeared, ["loyalty"], "reported when it is stored");
    let baseline = s.schemas.baseline().await.unwrap().unwrap();
    assert!(baseline.shapes["property"].root.field("loyalty").is_some());
    // Another property with that shape now passes the frozen schema.
    let other = ids[52];
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![other],
        ..Default::default()
    });
    shapes(&s, &reshaped, &[held, other]);
    let sixth = s.sync().await;
    assert_eq!(
        (sixth.counters.updated, sixth.counters.quarantined),
        (1, 0),
        "{:?}",
        s.failures(&sixth).await
    );
}
