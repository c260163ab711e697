//! What the operators and upstream do during a scenario: triggers (checking the answer), untracks
//! and re-tracks (recording what the store says), content changes, deletions, settings changes,
//! reader probes.

use crate::scenario::Action;
use crate::world::World;
use cupid_sync::api::routes::Op;
use cupid_sync::api::{ApiRequest, Handler};
use cupid_sync::domain::facet::Facet;
use std::collections::BTreeMap;

impl World {
    async fn api(
        &self,
        op: Op,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, (u16, String)> {
        let req = ApiRequest {
            method: method.into(),
            path: path.into(),
            content_type: body.as_ref().map(|_| "application/json".to_string()),
            body: body
                .map(|b| serde_json::to_vec(&b).unwrap())
                .unwrap_or_default(),
            ..Default::default()
        };
        match self.app().handle(op, &req).await {
            Ok(r) => Ok(serde_json::from_slice(&r.body).unwrap_or_default()),
            Err(e) => Err((e.status(), e.to_string())),
        }
    }

    pub(crate) async fn act(&self, action: Action) {
        match action {
            Action::Trigger {
                subset,
                dry_run,
                force,
            } => {
                let ids: Option<Vec<i64>> =
                    subset.map(|s| s.into_iter().map(|i| self.ids[i]).collect());
                // What the store says, before and after the call: an untrack or re-track by a
                // concurrent action may land while the call awaits; only an id untracked (or
                // tracked) throughout decides what the answer must be.
                let tracked_now = |w: &World| -> Vec<bool> {
                    let records = w.store.records();
                    ids.iter()
                        .flatten()
                        .map(|id| records.get(id).is_some_and(|r| r.is_tracked()))
                        .collect()
                };
                let before = tracked_now(self);
                let mut body = serde_json::json!({ "dry_run": dry_run, "force": force });
                if let Some(ids) = &ids {
                    body["hotel_ids"] = serde_json::json!(ids);
                }
                let answer = self
                    .api(Op::Trigger, "POST", "/api/v1/admin/sync", Some(body))
                    .await;
                let after = tracked_now(self);
                let all = ids.iter().flatten().copied();
                let untracked: Vec<i64> = all
                    .clone()
                    .zip(before.iter().zip(&after))
                    .filter(|(_, (b, a))| !**b && !**a)
                    .map(|(id, _)| id)
                    .collect();
                let all_tracked = before.iter().zip(&after).all(|(b, a)| *b && *a);
                match answer {
                    Ok(_) if !untracked.is_empty() => self.violation(format!(
                        "a subset sync of untracked ids {untracked:?} was accepted"
                    )),
                    Err((400, m)) if all_tracked => {
                        self.violation(format!("a subset sync of tracked ids was refused: {m}"))
                    }
                    Err((status, m)) if status >= 500 && status != 503 => {
                        self.violation(format!("trigger answered {status}: {m}"))
                    }
                    _ => {}
                }
            }
            Action::Untrack(i) => {
                let id = self.ids[i];
                let path = format!("/api/v1/admin/properties/{id}");
                let mut req_params = BTreeMap::new();
                req_params.insert("id".to_string(), id.to_string());
                let req = ApiRequest {
                    method: "DELETE".into(),
                    path,
                    params: req_params,
                    ..Default::default()
                };
                // A store fault may answer an error after the write applied: what counts is the
                // record itself.
                let _ = self.app().handle(Op::Untrack, &req).await;
                if self
                    .store
                    .records()
                    .get(&id)
                    .is_some_and(|r| !r.is_tracked())
                {
                    let at = self.store.write_count();
                    self.untracked.lock().unwrap().entry(id).or_insert(at);
                }
            }
            Action::Retrack(i) => {
                let id = self.ids[i];
                let body = serde_json::json!({ "hotel_ids": [id] });
                let _ = self
                    .api(Op::Track, "PUT", "/api/v1/admin/properties", Some(body))
                    .await;
                if self
                    .store
                    .records()
                    .get(&id)
                    .is_some_and(|r| r.is_tracked())
                {
                    let at = self.store.write_count();
                    if let Some(from) = self.untracked.lock().unwrap().remove(&id) {
                        self.untracked_spans.lock().unwrap().push((id, from, at));
                    }
                }
            }
            Action::Change { fraction, pick } => {
                let all: Vec<Facet> = vec![
                    Facet::Property,
                    Facet::Lang("fr".into()),
                    Facet::Lang("es".into()),
                    Facet::Reviews(self.scenario.review_count.max(1)),
                ];
                self.upstream.change(&self.ids, &all, fraction, pick);
            }
            Action::Drift { fraction, pick } => self.upstream.drift(&self.ids, fraction, pick),
            Action::Delete(i) => self.upstream.delete(self.ids[i]),
            Action::Read(i) => {
                let id = self.ids[i];
                let req = ApiRequest {
                    method: "GET".into(),
                    path: format!("/api/v1/properties/{id}"),
                    params: BTreeMap::from([("id".to_string(), id.to_string())]),
                    ..Default::default()
                };
                match self.app().handle(Op::PropertyGet, &req).await {
                    Err(e) if e.status() == 500 => {
                        self.violation(format!("a reader of hotel {id} got: {e}"));
                    }
                    Err(_) => {}
                    // What is served is the version its record names, never a mix of parts.
                    Ok(resp) => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&resp.body).unwrap_or_default();
                        let d = &v["data"];
                        if let (Some(want), false) =
                            (d["content_hash"].as_str(), d["document"].is_null())
                        {
                            let got = Facet::Property
                                .canonical(d["document"].clone())
                                .map(|c| c.hash)
                                .unwrap_or_default();
                            if got != want {
                                self.violation(format!(
                                    "a reader of hotel {id} was served a document whose hash {got} is not its record's {want}"
                                ));
                            }
                        }
                    }
                }
            }
            Action::Accept(i) | Action::Discard(i) => {
                // The i-th quarantined property now, if any (a random one would rarely be).
                let held: Vec<i64> = self
                    .store
                    .records()
                    .values()
                    .filter(|r| r.sync_status == cupid_sync::domain::run::SyncStatus::Quarantined)
                    .map(|r| r.hotel_id)
                    .collect();
                let id = if held.is_empty() {
                    self.ids[i]
                } else {
                    held[i % held.len()]
                };
                // What the operator read: the run that holds it now.
                let read = self
                    .store
                    .records()
                    .get(&id)
                    .and_then(|r| r.quarantine.as_ref().map(|q| q.sync_id.clone()))
                    .unwrap_or_default();
                let accept = matches!(action, Action::Accept(_));
                let (op, method, path) = if accept {
                    (
                        Op::QuarantineAccept,
                        "POST",
                        format!("/api/v1/admin/quarantine/{id}/accept"),
                    )
                } else {
                    (
                        Op::QuarantineDiscard,
                        "DELETE",
                        format!("/api/v1/admin/quarantine/{id}"),
                    )
                };
                let req = ApiRequest {
                    method: method.into(),
                    path,
                    params: BTreeMap::from([("hotel_id".to_string(), id.to_string())]),
                    content_type: Some("application/json".into()),
                    body: if accept {
                        serde_json::to_vec(
                            &serde_json::json!({"by": "sim-operator", "quarantined_by_sync": read}),
                        )
                        .unwrap()
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                };
                // 404 (nothing held) and 409 (held again meanwhile) are answers, not faults.
                if let Err(e) = self.app().handle(op, &req).await
                    && e.status() == 500
                {
                    self.violation(format!("quarantine {method} of hotel {id}: {e}"));
                }
            }
            Action::Settings {
                batch_size,
                max_concurrent,
            } => {
                let body = serde_json::json!([
                    {"setting_key": "sync_batch_size", "setting_value": batch_size},
                    {"setting_key": "sync_max_concurrent", "setting_value": max_concurrent}
                ]);
                let _ = self
                    .api(
                        Op::SettingsPut,
                        "PUT",
                        "/api/v1/admin/sync/settings",
                        Some(body),
                    )
                    .await;
            }
        }
    }
}
