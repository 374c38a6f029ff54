//! Prometheus metrics: plain HTTP `GET /metrics` on `hostbgp.metrics_address` (off by
//! default). A scrape asks the agent for the text, so every figure comes from the
//! state the agent acts on, read at one moment; nothing else writes it.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::status::Status;

/// A scrape waiting for the agent's answer.
pub type Scrape = oneshot::Sender<String>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as the classic Prometheus format, for scrapers and tools that do
/// not ask for OpenMetrics (`promtool check metrics`, curl): a counter's HELP and
/// TYPE name its `_total` samples, and there is no `# EOF`.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|head| {
            let rest = line.strip_prefix(head)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{head}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Kernel routes hostbgp wants, by what the kernel holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelRouteCounts {
    pub installed: u64,
    pub differs: u64,
    pub missing: u64,
    pub error: u64,
}

/// What the agent keeps between scrapes: the latency histogram.
#[derive(Clone)]
pub struct Metrics {
    event_to_update: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        // 10 µs .. ~160 ms: instance starts take 50-200 µs, a full table seconds.
        Metrics {
            event_to_update: Histogram::new(exponential_buckets(0.000_01, 2.0, 15)),
        }
    }
}

type PeerLabels = Vec<(&'static str, String)>;

impl Metrics {
    /// A kernel event batch's time until the UPDATEs it caused were handed to the
    /// sessions.
    pub fn observe_event_to_update(&self, d: Duration) {
        self.event_to_update.observe(d.as_secs_f64());
    }

    /// The exposition text for `status` and the kernel's routes.
    pub fn render(&self, status: &Status, kernel: KernelRouteCounts) -> String {
        let mut r = Registry::default();
        let up = Family::<PeerLabels, Gauge>::default();
        let advertised = Family::<PeerLabels, Gauge>::default();
        let sent = Family::<PeerLabels, Counter>::default();
        let received = Family::<PeerLabels, Counter>::default();
        let transitions = Family::<PeerLabels, Counter>::default();
        for p in &status.peers {
            let peer = || ("peer", p.name.clone());
            for network in &p.networks {
                up.get_or_create(&vec![peer(), ("network", network.clone())])
                    .set(i64::from(p.state == "Established"));
            }
            for (family, n) in &p.prefixes_sent {
                let afi = if family.starts_with("ipv4") {
                    "ipv4"
                } else {
                    "ipv6"
                };
                advertised
                    .get_or_create(&vec![peer(), ("afi", afi.to_string())])
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            for (counts, family) in [(&p.messages_sent, &sent), (&p.messages_received, &received)] {
                for (ty, n) in counts.by_name() {
                    family
                        .get_or_create(&vec![peer(), ("type", ty.to_string())])
                        .inc_by(n);
                }
            }
            transitions
                .get_or_create(&vec![peer()])
                .inc_by(p.established_transitions);
        }
        r.register(
            "hostbgp_peer_up",
            "Whether the session is Established (1) or not (0)",
            up,
        );
        r.register(
            "hostbgp_peer_prefixes_advertised",
            "Prefixes advertised to the peer, per address family",
            advertised,
        );
        r.register(
            "hostbgp_peer_messages_sent",
            "BGP messages sent, by type",
            sent,
        );
        r.register(
            "hostbgp_peer_messages_received",
            "BGP messages received, by type",
            received,
        );
        r.register(
            "hostbgp_peer_established_transitions",
            "Times the session reached Established",
            transitions,
        );
        let routes = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        for (state, n) in [
            ("installed", kernel.installed),
            ("differs", kernel.differs),
            ("missing", kernel.missing),
            ("error", kernel.error),
        ] {
            routes
                .get_or_create(&vec![("state", state)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        r.register(
            "hostbgp_kernel_routes",
            "Kernel routes hostbgp wants, by what the kernel holds",
            routes,
        );
        let drained = Gauge::<i64>::default();
        drained.set(i64::from(status.server.drained));
        r.register(
            "hostbgp_drained",
            "Whether every path carries GRACEFUL_SHUTDOWN (RFC 8326 drain): 1, or 0",
            drained,
        );
        r.register(
            "hostbgp_event_to_update_seconds",
            "From a kernel event batch to its UPDATEs handed to the sessions",
            self.event_to_update.clone(),
        );
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &r) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}

/// Binds the metrics listener.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics address {address}: {e}")))
}

/// Serves `GET /metrics` until the agent goes away.
/// Serves scrapes until `stop` (a moved `hostbgp.metrics_address`, or the agent
/// ending).
pub async fn serve(
    listener: TcpListener,
    scrapes: mpsc::Sender<Scrape>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = crate::control::accepted("metrics", listener.accept()) => a,
        };
        let Some(stream) = accepted else {
            continue;
        };
        if scrapes.is_closed() {
            return;
        }
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, scrapes.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    scrapes: mpsc::Sender<Scrape>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "only /metrics is here\n".into(),
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics\n".into(),
        ));
    }
    let openmetrics = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (tx, rx) = oneshot::channel();
    if scrapes.send(tx).await.is_err() {
        return Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "hostbgp is stopping\n".into(),
        ));
    }
    match rx.await {
        Ok(text) => {
            let (text, content_type) = if openmetrics {
                (text, OPENMETRICS)
            } else {
                (to_classic(&text), CLASSIC)
            };
            let mut r = reply(StatusCode::OK, text);
            if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            Ok(r)
        }
        Err(_) => Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "hostbgp is stopping\n".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{MessageCounts, PeerStatusView};

    #[test]
    fn renders_the_issue_names() {
        let mut st = Status::default();
        st.peers.push(PeerStatusView {
            name: "r1".into(),
            networks: vec!["lxdbr0".into()],
            state: "Established".into(),
            established_transitions: 2,
            messages_sent: MessageCounts::from_by_type([0, 1, 5, 0, 9, 0]),
            prefixes_sent: [
                ("ipv4-unicast".to_string(), 3),
                ("ipv6-unicast".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        });
        let m = Metrics::default();
        m.observe_event_to_update(Duration::from_micros(80));
        let kernel = KernelRouteCounts {
            installed: 4,
            ..Default::default()
        };
        let text = m.render(&st, kernel);
        for line in [
            "hostbgp_peer_up{peer=\"r1\",network=\"lxdbr0\"} 1",
            "hostbgp_peer_prefixes_advertised{peer=\"r1\",afi=\"ipv4\"} 3",
            "hostbgp_peer_messages_sent_total{peer=\"r1\",type=\"update\"} 5",
            "hostbgp_peer_messages_received_total{peer=\"r1\",type=\"keepalive\"} 0",
            "hostbgp_peer_established_transitions_total{peer=\"r1\"} 2",
            "hostbgp_kernel_routes{state=\"installed\"} 4",
            "hostbgp_drained 0",
            "hostbgp_event_to_update_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        st.server.drained = true;
        assert!(m
            .render(&st, kernel)
            .lines()
            .any(|l| l == "hostbgp_drained 1"));
        let classic = to_classic(&text);
        assert!(classic.contains("# TYPE hostbgp_peer_messages_sent_total counter\n"));
        assert!(classic.contains("# HELP hostbgp_peer_established_transitions_total Times"));
        assert!(classic.contains("# TYPE hostbgp_peer_up gauge\n"));
        assert!(!classic.contains("# EOF") && text.contains("# EOF"));
    }

    /// Every metric the shipped Grafana dashboard queries is one hostbgp serves.
    #[test]
    fn dashboard_queries_served_metrics() {
        let dashboard = include_str!("../dist/grafana-dashboard.json");
        let mut st = Status::default();
        st.peers.push(PeerStatusView {
            name: "r1".into(),
            networks: vec!["br0".into()],
            prefixes_sent: [("ipv4-unicast".to_string(), 1)].into_iter().collect(),
            ..Default::default()
        });
        let served = to_classic(&Metrics::default().render(&st, KernelRouteCounts::default()));
        let mut names: Vec<&str> = dashboard
            .match_indices("hostbgp_")
            .map(|(at, _)| {
                let rest = &dashboard[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() >= 6, "{names:?}");
        for name in names {
            assert!(
                served.lines().any(|l| l.starts_with(name)),
                "the dashboard queries {name}, which is not served"
            );
        }
    }
}
