//! Starting a manual run: validate, reserve the lease, create the run, dispatch.

use super::*;

impl WithDispatch {
    /// Starts a manual run: reserves the lease for it (one run at a time: 409 otherwise),
    /// creates the run, dispatches the sync function with the reserved token. A failure after
    /// the reservation never leaves a run open with nobody to close it (see below).
    pub(super) async fn trigger(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body: TriggerBody = req.json()?.unwrap_or(TriggerBody {
            hotel_ids: None,
            dry_run: None,
            force: None,
        });
        let hotel_ids = body
            .hotel_ids
            .as_deref()
            .map(|ids| parse_ids(ids, "hotel_ids", MAX_SYNC_IDS))
            .transpose()?;
        let (settings, _) = self.effective_settings().await?;
        let listed = match &hotel_ids {
            None => None,
            Some(ids) => {
                let (found, _) = self.reader.get_tracked(ids).await?;
                let tracked: std::collections::BTreeSet<i64> =
                    found.iter().map(|t| t.hotel_id).collect();
                let missing: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| !tracked.contains(id))
                    .collect();
                if !missing.is_empty() {
                    let shown: Vec<String> =
                        missing.iter().take(20).map(|id| id.to_string()).collect();
                    return Err(ApiError::bad_request(
                        "untracked_hotel_ids",
                        format!(
                            "hotel_ids: {} of them are not tracked ({}{}); track them first with PUT /api/v1/admin/properties",
                            missing.len(),
                            shown.join(", "),
                            if missing.len() > 20 { ", ..." } else { "" }
                        ),
                        "hotel_ids",
                    ));
                }
                Some(found.len() as u64)
            }
        };
        let sync_id = self.clock.new_id();
        let take = LeaseRequest::Take {
            owner: sync_id.clone(),
            handoff: true,
        };
        let fence = match self.lease.apply(&take, self.lease_ttl).await? {
            Ok(state) => state.fence,
            Err(Refused::Held { owner, .. }) => {
                return Err(ApiError::Conflict {
                    code: "sync_in_progress",
                    message: format!("a sync is already running ({owner})"),
                    details: serde_json::json!({ "sync_id": owner }),
                });
            }
            Err(Refused::Fenced) => {
                return Err(ApiError::Conflict {
                    code: "sync_in_progress",
                    message: "a sync is already running".into(),
                    details: serde_json::Value::Null,
                });
            }
        };
        let total = match listed {
            Some(n) => n,
            None => match self.stats.get().await {
                Ok(stats) => stats.counts.tracked(),
                Err(e) => {
                    self.release(&sync_id, fence).await;
                    return Err(e.into());
                }
            },
        };
        let mut run = SyncRun::new(sync_id.clone(), SyncType::Manual, self.clock.now());
        run.hotel_ids = hotel_ids.clone();
        run.dry_run = body.dry_run.unwrap_or(false);
        // An operator accepts a mass change: the circuit breaker is off for this run.
        run.force = body.force.unwrap_or(false);
        run.total = total;
        // From here a failure whose effect is unknown keeps the reservation: the run may
        // exist, and closing it could race the invocation that picks it up. The reservation
        // expires after the lease TTL; the next sync then closes the run as abandoned.
        let reserved = |e: PortError| {
            tracing::error!(sync_id = %sync_id, call = %e.call, error = %e.message, "could not start the sync; its reservation will expire");
            ApiError::Unavailable(format!(
                "could not start sync {sync_id} ({}); a new sync can start once its reservation expires ({} s)",
                e.call,
                self.lease_ttl.as_secs()
            ))
        };
        match self.runs.create(&run, fence).await {
            Ok(()) => {}
            // The id is new: a conflict is our own create, retried by the SDK after it applied.
            Err(e) if e.kind == PortErrorKind::Conflict => {}
            Err(e) => return Err(reserved(e)),
        }
        let dispatch = SyncRequest::Manual {
            sync_id: sync_id.clone(),
            lease: Some(fence),
            hotel_ids,
            dry_run: run.dry_run,
        };
        use backon::{ExponentialBuilder, Retryable};
        let sent = (|| self.dispatch.dispatch(&dispatch))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_times(2),
            )
            .sleep(tokio::time::sleep)
            .await;
        if let Err(e) = sent {
            // Was the event delivered after all? The lease arbitrates: picking the run up
            // ourselves succeeds only if no invocation did. Then nobody works on it: close it.
            let pickup = LeaseRequest::Pickup {
                owner: sync_id.clone(),
                from: Some(fence),
            };
            match self.lease.apply(&pickup, self.lease_ttl).await {
                Ok(Ok(state)) => {
                    run.status = RunStatus::Failed;
                    run.error_message = Some(format!("could not start the sync function: {e}"));
                    run.completed_at = Some(self.clock.now());
                    if self.runs.save(&run, state.fence).await.is_err() {
                        return Err(reserved(e));
                    }
                    self.release(&sync_id, state.fence).await;
                    tracing::error!(sync_id = %sync_id, error = %e, "could not start the sync function; the run is closed");
                    return Err(ApiError::Unavailable(format!(
                        "could not start the sync function ({}); sync {sync_id} was closed as failed, try again shortly",
                        e.call
                    )));
                }
                // An invocation holds it: the run started.
                Ok(Err(_)) => {
                    tracing::warn!(sync_id = %sync_id, error = %e, "the invoke answered an error but the sync started")
                }
                Err(_) => return Err(reserved(e)),
            }
        }
        tracing::info!(sync_id = %sync_id, total, dry_run = run.dry_run, force = run.force, "manual sync dispatched");
        let requests = total * settings.requests_per_property();
        let estimate = Duration::try_from_secs_f64((requests as f64 / settings.rate_limit).ceil())
            .unwrap_or(Duration::ZERO);
        Ok(ApiResponse::ok(
            202,
            &crate::api::wire::Triggered {
                status: "running".into(),
                sync_id,
                message: "Synchronization started in background".into(),
                estimated_duration: format_go_duration(estimate),
                triggered_at: run.started_at.rfc3339(),
            },
        ))
    }
}
