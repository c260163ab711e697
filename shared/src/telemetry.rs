//! Structured JSON logs (tracing), one object per line, shaped as Lambda users expect (as
//! Powertools for AWS Lambda writes them): `level`, `message`, `timestamp`, `service`,
//! `function_name`, `cold_start`, the request id, and every field of the event and of the spans
//! it is in (`sync_id`, `hotel_id`, ...) at the top level. The level comes from `LOG_LEVEL`
//! (any tracing filter), else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.

use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The `service` of every line.
pub const SERVICE: &str = "cupid-sync";

/// The filter: `LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL` (Lambda's names: `FATAL` is `error`).
fn level(get: &dyn Fn(&str) -> Option<String>) -> (String, &'static str) {
    let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    if let Some(l) = get("LOG_LEVEL") {
        return (l, "LOG_LEVEL");
    }
    match get("AWS_LAMBDA_LOG_LEVEL") {
        Some(l) if l.eq_ignore_ascii_case("fatal") => ("error".into(), "AWS_LAMBDA_LOG_LEVEL"),
        Some(l) => (l.to_ascii_lowercase(), "AWS_LAMBDA_LOG_LEVEL"),
        None => ("info".into(), "LOG_LEVEL"),
    }
}

/// Installs the JSON subscriber once. A bad level is a startup error naming the variable.
/// The level filters events only: spans are always recorded, so a `warn` line still carries
/// its request, run and hotel.
pub fn init() -> Result<(), crate::config::ConfigError> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (level, var) = level(&|k| std::env::var(k).ok());
    let events = tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
        crate::config::ConfigError::Invalid {
            var,
            reason: format!("`{level}`: {e}"),
        }
    })?;
    let lines = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(LambdaJson::from_env())
        .with_filter(events.or(filter_fn(|m| m.is_span())));
    let _ = tracing_subscriber::registry()
        .with(ColdStart)
        .with(lines)
        .try_init();
    Ok(())
}

/// The name of the span lambda_runtime opens around each invocation (with `requestId`).
const INVOKE_SPAN: &str = "Lambda runtime invoke";

/// Notes the first invocation this process serves (its lines are the cold start), when its
/// span opens: whether or not anything is logged during it.
pub struct ColdStart;

impl<S: Subscriber> tracing_subscriber::Layer<S> for ColdStart {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == INVOKE_SPAN && FIRST_REQUEST.get().is_none() {
            let mut fields = Map::new();
            attrs.record(&mut Fields(&mut fields));
            if let Some(Value::String(id)) = fields.remove("requestId") {
                let _ = FIRST_REQUEST.set(id);
            }
        }
    }
}

/// The line format (a `tracing_subscriber` event formatter).
pub struct LambdaJson {
    function_name: Option<String>,
}

impl LambdaJson {
    pub fn from_env() -> Self {
        LambdaJson {
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
        }
    }
}

/// The first request this process served: its lines are the cold start.
static FIRST_REQUEST: OnceLock<String> = OnceLock::new();

/// An event's fields as JSON values (`message` included).
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        // The fields of the spans the event is in, outermost first (JsonFields writes each
        // span's fields as a JSON object).
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<FormattedFields<N>>()
                    && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(f)
                {
                    line.extend(m);
                }
            }
        }
        event.record(&mut Fields(&mut line));
        // Written after the fields: a field of the same name cannot replace them.
        line.insert("level".into(), meta.level().as_str().into());
        line.insert(
            "timestamp".into(),
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert("service".into(), SERVICE.into());
        if let Some(name) = &self.function_name {
            line.insert("function_name".into(), name.clone().into());
        }
        // lambda_runtime's invoke span names the request `requestId`.
        if let Some(id) = line.remove("requestId") {
            let cold = FIRST_REQUEST.get().map(String::as_str) == id.as_str();
            line.insert("cold_start".into(), cold.into());
            line.insert("request_id".into(), id);
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn a_line_has_the_lambda_keys_and_the_span_fields_at_the_top_level() {
        use tracing_subscriber::Layer;
        use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
        use tracing_subscriber::layer::SubscriberExt;
        let buf = Buf::default();
        // As `init` builds it, at `warn`: the info spans still give their fields.
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(buf.clone())
            .fmt_fields(JsonFields::new())
            .event_format(LambdaJson {
                function_name: Some("stack-sync".into()),
            })
            .with_filter(LevelFilter::WARN.or(filter_fn(|m| m.is_span())));
        let subscriber = tracing_subscriber::registry().with(ColdStart).with(lines);
        tracing::subscriber::with_default(subscriber, || {
            for request in ["req-1", "req-2"] {
                let invoke = tracing::info_span!("Lambda runtime invoke", requestId = request);
                let _i = invoke.enter();
                let sync = tracing::info_span!("sync", sync_id = "01ABC", fence = 3);
                let _s = sync.enter();
                let prop = tracing::info_span!("property", hotel_id = 1641879);
                let _p = prop.enter();
                tracing::info!("filtered out at warn");
                tracing::warn!(
                    facet = "property",
                    level = "spoofed",
                    "could not read the previous version"
                );
            }
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            (&lines[1]["request_id"], &lines[1]["cold_start"]),
            (&Value::from("req-2"), &Value::from(false)),
            "a later invocation is warm"
        );
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "could not read the previous version");
        assert_eq!(line["service"], SERVICE);
        assert_eq!(line["function_name"], "stack-sync");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["cold_start"], true);
        assert_eq!(
            (&line["sync_id"], &line["fence"], &line["hotel_id"]),
            (
                &Value::from("01ABC"),
                &Value::from(3),
                &Value::from(1641879)
            )
        );
        assert_eq!(line["facet"], "property");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_level_comes_from_log_level_then_lambda() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(level(&env(&[])).0, "info");
        assert_eq!(level(&env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")])).0, "debug");
        assert_eq!(level(&env(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")])).0, "error");
        assert_eq!(
            level(&env(&[
                ("LOG_LEVEL", "warn,cupid_sync=debug"),
                ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
            ])),
            ("warn,cupid_sync=debug".to_string(), "LOG_LEVEL")
        );
    }
}
