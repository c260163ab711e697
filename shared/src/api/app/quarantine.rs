//! Quarantine for operators: list what was held back, read a held payload with its
//! violations, accept it (the next sync stores it) or discard it (the next sync checks again).

use super::*;
use crate::api::wire::{AcceptedView, Discarded, HeldFacetView, QuarantineEntry, QuarantinePage};
use crate::domain::contract::Rule;
use crate::domain::quarantine::{self, Acceptance, Accepted};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    by: Option<String>,
    /// The run whose held payloads the operator read (`quarantined_by_sync`): only those are
    /// accepted, never content a later run held.
    quarantined_by_sync: Option<String>,
}

/// A quarantined property as the API shows it.
fn view(e: &HeldEntry) -> QuarantineEntry {
    QuarantineEntry {
        hotel_id: e.hotel_id,
        sync_status: "quarantined".into(),
        quarantined_by_sync: e.note.sync_id.clone(),
        quarantined_at: Timestamp(e.note.at).rfc3339(),
        rules: e.note.rules(),
        facets: e
            .note
            .facets
            .iter()
            .map(|f| HeldFacetView {
                facet: f.facet.clone(),
                content_hash: f.hash.clone(),
                violations: f.report.violations.clone(),
                violation_count: f.report.total,
                payload_kept: f.payload_kept,
            })
            .collect(),
        accepted: e
            .accepted
            .iter()
            .map(|(facet, a)| AcceptedView {
                facet: facet.clone(),
                content_hash: a.hash.clone(),
                by: a.by.clone(),
                at: Timestamp(a.at).rfc3339(),
            })
            .collect(),
        payloads: None,
        next: None,
    }
}

impl App {
    fn hotel_param(req: &ApiRequest) -> Result<i64, ApiError> {
        Self::hotel_id_in(req, "hotel_id", "invalid_hotel_id")
    }

    async fn held_or_404(&self, id: i64) -> Result<HeldEntry, ApiError> {
        self.quarantine
            .held(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("hotel {id} is not quarantined")))
    }

    /// `GET /admin/quarantine?limit=&after=&rule=`
    pub(super) async fn quarantine_list(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let (limit, _) = Self::paging_with(req, 50)?;
        if req.query.contains_key("offset") {
            return Err(ApiError::bad_request(
                "invalid_offset",
                "the quarantine pages by after (from next_after), not offset",
                "offset",
            ));
        }
        let after = Self::after_param(req)?;
        let rule = match req.query.get("rule") {
            None => None,
            Some(raw) => Some(Rule::parse(raw.trim()).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_rule",
                    format!(
                        "rule must be one of {} (got `{raw}`)",
                        Rule::ALL.map(Rule::as_str).join(", ")
                    ),
                    "rule",
                )
            })?),
        };
        let page = self.quarantine.list_held(limit, after, rule).await?;
        Ok(ApiResponse::ok(
            200,
            &QuarantinePage {
                items: page.items.iter().map(view).collect(),
                next_after: page.next,
                rule,
            },
        ))
    }

    /// `GET /admin/quarantine/{hotel_id}`: the note and each held payload (the canonical JSON
    /// that would have been stored), while kept.
    pub(super) async fn quarantine_get(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::hotel_param(req)?;
        let entry = self.held_or_404(id).await?;
        let mut v = view(&entry);
        let mut payloads = std::collections::BTreeMap::new();
        for f in &entry.note.facets {
            let (doc, _) = self
                .reader
                .get_document(id, &quarantine::payload_key(&f.facet))
                .await?;
            // Served only if it is the payload the note names (a later run may have replaced
            // it, or it expired).
            let payload = doc
                .filter(|d| d.content_hash == f.hash)
                .and_then(|d| crate::domain::document::decompress(&d.compressed).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            payloads.insert(f.facet.clone(), payload);
        }
        v.payloads = Some(payloads);
        Ok(ApiResponse::ok(200, &v))
    }

    /// `POST /admin/quarantine/{hotel_id}/accept` `{"by": "name", "quarantined_by_sync": id}`:
    /// every payload held by that run is accepted, by content hash (409 if a later run holds
    /// other content); the next sync (any run that includes the property) stores exactly that
    /// content, and its run log names who accepted it and when.
    pub(super) async fn quarantine_accept(
        &self,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let id = Self::hotel_param(req)?;
        let body: AcceptBody = req.json()?.ok_or_else(|| {
            ApiError::bad_request("invalid_body", "body must be {\"by\": \"name\"}", "by")
        })?;
        let by = quarantine::valid_operator(body.by.as_deref().unwrap_or(""))
            .map_err(|m| ApiError::bad_request("invalid_by", format!("by {m}"), "by"))?;
        let read = body
            .quarantined_by_sync
            .filter(|s| !s.trim().is_empty() && s.len() <= 64)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_quarantined_by_sync",
                    "quarantined_by_sync must name the run whose held payloads you read (from GET /api/v1/admin/quarantine/{hotel_id})",
                    "quarantined_by_sync",
                )
            })?;
        let entry = self.held_or_404(id).await?;
        let changed = || ApiError::Conflict {
            code: "quarantine_changed",
            message: format!(
                "hotel {id} was quarantined again by a later run; read it again before accepting"
            ),
            details: serde_json::json!({ "hotel_id": id, "quarantined_by_sync": entry.note.sync_id }),
        };
        if read != entry.note.sync_id {
            return Err(changed());
        }
        let now = self.clock.now().secs();
        // Earlier acceptances of other facets stand (a run may hold one facet, then another).
        let mut accepted: Accepted = entry.accepted.clone();
        accepted.extend(entry.note.facets.iter().map(|f| {
            (
                f.facet.clone(),
                Acceptance {
                    hash: f.hash.clone(),
                    by: by.clone(),
                    at: now,
                },
            )
        }));
        match self
            .quarantine
            .accept(id, &entry.note.sync_id, &accepted)
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == PortErrorKind::NotFound => {
                return Err(ApiError::NotFound(format!("hotel {id} is not quarantined")));
            }
            Err(e) if e.kind == PortErrorKind::Conflict => return Err(changed()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(hotel_id = id, by = %by, "held payload accepted by an operator");
        let mut v = view(&HeldEntry { accepted, ..entry });
        v.next = Some(format!(
            "the next sync stores it: POST /api/v1/admin/sync {{\"hotel_ids\": [{id}]}}"
        ));
        Ok(ApiResponse::ok(200, &v))
    }

    /// `DELETE /admin/quarantine/{hotel_id}`: drop the held payloads; the property goes back
    /// to `pending` and the next sync checks it again.
    pub(super) async fn quarantine_discard(
        &self,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let id = Self::hotel_param(req)?;
        let note = format!(
            "quarantine discarded by an operator at {}; the next sync checks again",
            self.clock.now().rfc3339()
        );
        match self.quarantine.discard(id, &note).await {
            Ok(()) => Ok(ApiResponse::ok(
                200,
                &Discarded {
                    hotel_id: id,
                    sync_status: "pending".into(),
                    discarded: true,
                },
            )),
            Err(e) if e.kind == PortErrorKind::NotFound => {
                Err(ApiError::NotFound(format!("hotel {id} is not quarantined")))
            }
            Err(e) => Err(e.into()),
        }
    }
}
