//! Prometheus metrics: requests by route and status, request latency histograms by
//! route, objects added and failed, objects stored (read from the store at scrape time).

use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use phalanx_node::Node;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's metrics.
pub struct Metrics {
    node: Arc<Node>,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    added: AtomicU64,
    failed: AtomicU64,
}

impl Metrics {
    /// Empty metrics for a node.
    pub fn new(node: Arc<Node>) -> Metrics {
        Metrics {
            node,
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
            added: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Counts the outcome of an add-objects request.
    pub fn objects_added(&self, success: u64, failure: u64) {
        self.added.fetch_add(success, Ordering::Relaxed);
        self.failed.fetch_add(failure, Ordering::Relaxed);
    }

    fn record(&self, method: &str, route: &str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = lat.entry(route.to_owned()).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
    }

    fn text(&self, stored: Option<u64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP phalanx_http_requests_total HTTP requests by method, route and status.\n# TYPE phalanx_http_requests_total counter\n");
        for ((m, r, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "phalanx_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                escape(r)
            );
        }
        out.push_str("# HELP phalanx_http_request_duration_seconds Request latency by route.\n# TYPE phalanx_http_request_duration_seconds histogram\n");
        for (r, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let r = escape(r);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "phalanx_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "phalanx_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "phalanx_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "phalanx_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP phalanx_taxii_objects_added_total Objects accepted by TAXII POST (new or identical).\n# TYPE phalanx_taxii_objects_added_total counter\nphalanx_taxii_objects_added_total {}",
            self.added.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP phalanx_taxii_objects_failed_total Objects refused by TAXII POST.\n# TYPE phalanx_taxii_objects_failed_total counter\nphalanx_taxii_objects_failed_total {}",
            self.failed.load(Ordering::Relaxed)
        );
        if let Some(n) = stored {
            let _ = writeln!(
                out,
                "# HELP phalanx_objects_stored Object versions in the store.\n# TYPE phalanx_objects_stored gauge\nphalanx_objects_stored {n}"
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Middleware: times every request and counts it under its route pattern.
pub async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    app.metrics.record(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`.
pub async fn render(State(app): State<App>) -> Response {
    let node = app.metrics.node.clone();
    let stored = tokio::task::spawn_blocking(move || node.store().total_objects().ok())
        .await
        .ok()
        .flatten();
    let mut r = app.metrics.text(stored).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
