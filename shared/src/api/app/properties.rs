//! Tracking, untracking and reading properties (the document the record points at).

use super::*;

impl App {
    pub(super) fn id_param(req: &ApiRequest) -> Result<i64, ApiError> {
        Self::hotel_id_in(req, "id", "invalid_id")
    }

    /// The path parameter `name` as a positive hotel id, or a 400 naming it.
    pub(super) fn hotel_id_in(
        req: &ApiRequest,
        name: &str,
        code: &'static str,
    ) -> Result<i64, ApiError> {
        let raw = req.param(name);
        raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::bad_request(
                code,
                format!("{name} `{raw}` is not a positive integer hotel id"),
                name,
            )
        })
    }

    /// `?after=` (a hotel id a previous page returned as `next_after`), or a 400 naming it.
    pub(super) fn after_param(req: &ApiRequest) -> Result<Option<i64>, ApiError> {
        match req.query.get("after") {
            None => Ok(None),
            Some(raw) => raw.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(
                    "invalid_after",
                    format!("after must be a hotel id from next_after (got `{raw}`)"),
                    "after",
                )
            }),
        }
    }

    pub(super) async fn track(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body: TrackBody = req.json()?.ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "body must be {\"hotel_ids\": [..]}",
                "hotel_ids",
            )
        })?;
        let ids = parse_ids(&body.hotel_ids, "hotel_ids", MAX_TRACK_IDS)?;
        let done = self.tracking.track(&ids).await?;
        Ok(ApiResponse::ok(
            200,
            &crate::api::wire::TrackResponse {
                requested: ids.len(),
                newly_tracked: done.new + done.retracked,
                new: done.new,
                retracked: done.retracked,
                already_tracked: ids.len().saturating_sub(done.new + done.retracked),
            },
        ))
    }

    pub(super) async fn untrack(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::id_param(req)?;
        match self.tracking.untrack(id).await {
            Ok(()) => Ok(ApiResponse::ok(
                200,
                &serde_json::json!({ "hotel_id": id, "sync_status": "untracked", "data_kept": true }),
            )),
            Err(e) if e.kind == PortErrorKind::NotFound => {
                Err(ApiError::NotFound(format!("hotel {id} is not tracked")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A stored facet document, decompressed: the version the record points at.
    pub(super) async fn facet_doc(
        &self,
        record: &crate::domain::run::SyncRecord,
        facet: &str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let id = record.hotel_id;
        let Some(state) = record.facet_states().get(facet).cloned() else {
            return Ok(None);
        };
        let (doc, _) = match self.reader.get_whole_document(id, &state.key(facet)).await {
            // A part of another version: two newer syncs rewrote the slot under this reader.
            Err(e) if e.kind == PortErrorKind::Conflict => {
                return Err(ApiError::Unavailable(format!(
                    "hotel {id}: the {facet} document changed while it was read; retry"
                )));
            }
            r => r?,
        };
        if let Some(d) = &doc
            && d.content_hash != state.hash
        {
            // Never serve a document under a record that describes another version: the slot
            // was rewritten after the record was read (two newer syncs); a retry reads both anew.
            return Err(ApiError::Unavailable(format!(
                "hotel {id}: the {facet} document changed while it was read; retry"
            )));
        }
        match doc {
            None => Err(ApiError::Internal(format!(
                "hotel {id}: the record points at {} but that document is missing",
                FacetState::doc_key(facet, state.slot.as_deref())
            ))),
            Some(d) => crate::domain::document::decompress(&d.compressed)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::Internal(format!(
                        "stored {facet} document of hotel {id} could not be decoded"
                    ))
                }),
        }
    }

    pub(super) async fn property(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::id_param(req)?;
        let lang = match req.query.get("lang").map(|l| l.trim().to_ascii_lowercase()) {
            None => None,
            Some(l) if crate::domain::settings::LANGUAGES.contains(&l.as_str()) => Some(l),
            Some(l) => {
                return Err(ApiError::bad_request(
                    "invalid_lang",
                    format!(
                        "lang `{l}` is not a supported ISO 639-1 code ({})",
                        crate::domain::settings::LANGUAGES.join(", ")
                    ),
                    "lang",
                ));
            }
        };
        let record = self
            .reader
            .get_record(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("hotel {id} is not known")))?;
        let (language, document, note) = match lang.as_deref() {
            None | Some("en") => (
                "en".to_string(),
                self.facet_doc(&record, facet::PROPERTY).await?,
                None,
            ),
            Some(l) => match self.facet_doc(&record, &format!("lang#{l}")).await? {
                Some(doc) => (l.to_string(), Some(doc), None),
                None => (
                    "en".to_string(),
                    self.facet_doc(&record, facet::PROPERTY).await?,
                    Some(format!(
                        "no `{l}` translation has been synced for this property; showing English"
                    )),
                ),
            },
        };
        let ts = |t: Option<i64>| t.map(|s| Timestamp(s).rfc3339());
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({
                "hotel_id": id,
                "sync_status": record.sync_status.as_str(),
                "data_version": record.data_version,
                "content_hash": record.content_hash,
                "last_synced": ts(record.last_synced),
                "last_updated": ts(record.last_updated),
                "last_error": record.last_error,
                "last_sync_id": record.last_sync_id,
                "language": language,
                "note": note,
                "document": document,
            }),
        ))
    }

    pub(super) async fn reviews(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::id_param(req)?;
        let (limit, offset) = Self::paging_with(req, 20)?;
        let Some(record) = self.reader.get_record(id).await? else {
            return Err(ApiError::NotFound(format!("hotel {id} is not known")));
        };
        let all = self.facet_doc(&record, facet::REVIEWS).await?;
        let items: Vec<serde_json::Value> = all
            .as_ref()
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let total = items.len();
        let page: Vec<serde_json::Value> = items.into_iter().skip(offset).take(limit).collect();
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({ "hotel_id": id, "items": page, "limit": limit, "offset": offset, "total": total, "synced": all.is_some() }),
        ))
    }
}
