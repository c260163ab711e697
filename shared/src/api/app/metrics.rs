//! `GET /api/v1/admin/sync/metrics`: the sync in Prometheus' text exposition format (0.0.4),
//! built with the `prometheus` crate's registry and text encoder from what status reads (the
//! counts item, the schedule, the newest runs, the current run): constant work whatever the
//! number of properties and runs, no full-table read.

use super::status::{RECENT_RUNS, Snapshot};
use super::*;
use prometheus::{Encoder, Gauge, GaugeVec, Opts, Registry, TextEncoder};

/// Every metric's name starts with this.
const NS: &str = "cupid_sync";

/// Registers the metrics on a fresh registry as they are filled (a failed registration is a
/// programming error: a duplicated name or label).
struct Metrics {
    registry: Registry,
}

impl Metrics {
    fn gauge(&self, name: &str, help: &str, value: f64) -> Result<(), ApiError> {
        let g = Gauge::with_opts(Opts::new(name, help).namespace(NS)).map_err(internal)?;
        g.set(value);
        self.registry.register(Box::new(g)).map_err(internal)
    }

    fn family(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'static str, f64)>,
    ) -> Result<(), ApiError> {
        let g = GaugeVec::new(Opts::new(name, help).namespace(NS), &[label]).map_err(internal)?;
        for (l, v) in values {
            g.with_label_values(&[l]).set(v);
        }
        self.registry.register(Box::new(g)).map_err(internal)
    }
}

fn internal(e: prometheus::Error) -> ApiError {
    ApiError::Internal(format!("metrics: {e}"))
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

impl Scheduled {
    pub(super) async fn metrics(&self) -> Result<ApiResponse, ApiError> {
        let (snap, current) = tokio::join!(self.snapshot(), self.current_run());
        let (
            Snapshot {
                input,
                finished,
                stats,
                recent,
                ..
            },
            current,
        ) = (snap?, current?);
        let m = Metrics {
            registry: Registry::new(),
        };
        m.family(
            "properties",
            "Tracked properties by sync status (the maintained catalogue counts)",
            "status",
            stats.counts.pairs().map(|(s, n)| (s, n.max(0) as f64)),
        )?;
        m.gauge("runs", "Runs in the run log", stats.runs as f64)?;
        let newest = recent.len().min(RECENT_RUNS);
        m.family(
            "recent_runs",
            &format!("The newest {RECENT_RUNS} runs by status"),
            "status",
            RunStatus::ALL.map(|st| {
                let n = recent[..newest].iter().filter(|r| r.status == st).count();
                (st.as_str(), n as f64)
            }),
        )?;
        let h = health::compute(&input);
        m.family(
            "health",
            "1 for the sync's health (healthy, degraded, unhealthy or stopped), 0 for the others",
            "status",
            [
                (health::HealthStatus::Healthy, "healthy"),
                (health::HealthStatus::Degraded, "degraded"),
                (health::HealthStatus::Unhealthy, "unhealthy"),
                (health::HealthStatus::Stopped, "stopped"),
            ]
            .map(|(st, name)| (name, flag(h.status == st))),
        )?;
        m.gauge(
            "schedule_enabled",
            "1 when the schedule runs syncs automatically",
            flag(input.schedule_enabled),
        )?;
        m.gauge(
            "paused",
            "1 when the schedule paused itself after failed runs in a row",
            flag(input.paused.is_some() && !input.schedule_enabled),
        )?;
        m.gauge(
            "interval_seconds",
            "Time between scheduled syncs",
            input.interval.duration().as_secs() as f64,
        )?;
        if let Some(t) = input.last_success {
            m.gauge(
                "last_success_timestamp_seconds",
                "When the newest successful sync ended (Unix time)",
                t.secs() as f64,
            )?;
        }
        m.gauge("running", "1 while a sync runs", flag(current.is_some()))?;
        if let Some(r) = &current {
            m.gauge(
                "current_run_processed_properties",
                "Properties the current run has done",
                r.counters.processed as f64,
            )?;
            m.gauge(
                "current_run_total_properties",
                "Properties the current run will do",
                r.total as f64,
            )?;
        }
        if let Some(r) = &finished {
            m.family(
                "last_run_status",
                "1 for the newest finished run's status, 0 for the others",
                "status",
                RunStatus::ALL.map(|st| (st.as_str(), flag(r.status == st))),
            )?;
            if let Some(d) = r.duration_secs() {
                m.gauge(
                    "last_run_duration_seconds",
                    "How long the newest finished run took",
                    d.max(0) as f64,
                )?;
            }
            let c = &r.counters;
            m.family(
                "last_run_properties",
                "Properties of the newest finished run by outcome",
                "outcome",
                [
                    ("updated", c.updated),
                    ("unchanged", c.unchanged),
                    ("failed", c.failed),
                    ("not_found", c.not_found),
                    ("partial", c.partial),
                    ("quarantined", c.quarantined),
                    ("untracked", c.untracked),
                ]
                .map(|(o, n)| (o, n as f64)),
            )?;
            m.gauge(
                "last_run_upstream_requests",
                "Requests the newest finished run sent upstream (each retry counts)",
                c.upstream_requests as f64,
            )?;
            m.family(
                "last_run_upstream_errors",
                "Upstream attempts of the newest finished run that were answered 429, 5xx, or timed out / could not connect",
                "kind",
                [
                    ("throttled", c.upstream_throttled),
                    ("server_error", c.upstream_server_errors),
                    ("unreachable", c.upstream_unreachable),
                ]
                .map(|(k, n)| (k, n as f64)),
            )?;
            m.gauge(
                "last_run_upstream_retries",
                "Retries the newest finished run made upstream",
                c.upstream_retries as f64,
            )?;
            m.gauge(
                "last_run_write_units",
                "DynamoDB write units the newest finished run consumed",
                c.consumed_wcu,
            )?;
            m.gauge(
                "last_run_read_units",
                "DynamoDB read units the newest finished run consumed",
                c.consumed_rcu,
            )?;
            m.gauge(
                "last_run_schema_changes",
                "Paths that appeared, disappeared or changed type in the newest finished run",
                r.drift
                    .iter()
                    .map(|d| d.appeared.len() + d.disappeared.len() + d.type_changed.len())
                    .sum::<usize>() as f64,
            )?;
        }
        let mut body = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut body)
            .map_err(internal)?;
        Ok(ApiResponse::raw(200, prometheus::TEXT_FORMAT, body))
    }
}
