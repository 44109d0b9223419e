//! JSON log lines that name the trace they belong to.
//!
//! [`WithTraceIds`] wraps `tracing-subscriber`'s JSON formatter and puts `trace_id` and `span_id`
//! (lower-case hex, as in `traceparent` and in tracing back ends) first in the object, taken from
//! the OpenTelemetry context of the span the event happens in. Outside any span the line is the
//! plain JSON formatter's.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event formatter writing JSON objects through `inner`, with the trace ids added.
#[derive(Debug, Clone)]
pub struct WithTraceIds<F> {
    inner: F,
}

impl<F> WithTraceIds<F> {
    /// Wraps a JSON event formatter.
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // The OpenTelemetry layer attaches a span's context to the thread while the span is
        // entered, so the current context is the one of the span this event happens in.
        let context = opentelemetry::Context::current();
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let ids = format!(
            "\"trace_id\":\"{}\",\"span_id\":\"{}\"",
            span_context.trace_id(),
            span_context.span_id()
        );
        writer.write_str(&splice_first(&line, &ids))
    }
}

/// `object` (one JSON object, possibly followed by a newline) with `members` inserted first.
fn splice_first(object: &str, members: &str) -> String {
    let Some(rest) = object.strip_prefix('{') else {
        // Not an object: leave the line as the inner formatter wrote it.
        return object.to_owned();
    };
    let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
    format!("{{{members}{separator}{rest}")
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::{LogConfig, LogFormat};

    #[test]
    fn members_go_first_in_the_object() {
        assert_eq!(splice_first("{\"a\":1}\n", "\"t\":2"), "{\"t\":2,\"a\":1}\n");
        assert_eq!(splice_first("{}", "\"t\":2"), "{\"t\":2}");
        assert_eq!(splice_first("plain", "\"t\":2"), "plain");
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
        }
    }

    #[test]
    fn json_lines_in_a_span_carry_its_trace_and_span_ids() {
        let provider = SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let config = LogConfig {
            format: LogFormat::Json,
            filter: "info".into(),
        };
        let subscriber = tracing_subscriber::registry()
            .with(super::super::fmt_layer(&config, move || writer.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));

        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("work", job = "sweep");
            let ids = {
                let context = span.context();
                let span_ref = context.span();
                let span_context = span_ref.span_context();
                (span_context.trace_id().to_string(), span_context.span_id().to_string())
            };
            span.in_scope(|| tracing::info!(sessions = 3, "inside the span"));
            ids
        });

        let lines = buffer.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "outside any span");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);

        let inside = &lines[1];
        assert_eq!(inside["message"], "inside the span");
        assert_eq!(inside["sessions"], 3);
        assert_eq!(inside["span"]["name"], "work");
        assert_eq!(inside["trace_id"], trace_id.as_str());
        assert_eq!(inside["span_id"], span_id.as_str());
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0".repeat(32));
    }
}
