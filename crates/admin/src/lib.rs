//! zonegate-admin: the gateway's operations endpoint over HTTP (issue 9).
//!
//! ```text
//!  GET /              the dashboard (one page, its JS and CSS embedded in the binary)
//!  GET /metrics       OpenMetrics text (prometheus-client), prefix zonegate_
//!  GET /healthz       200 while the process serves HTTP (liveness)
//!  GET /readyz        200 when every listener is up and the audit log is writable, else 503
//!  GET /api/state     JSON: everything the dashboard shows
//!  GET /api/events    server-sent events: `state` (the same JSON) once a second
//! ```
//!
//! Off unless the model has `admin: {listen: ...}` (zonegate-policy's `admin` module, which
//! refuses an address off loopback without `token_file` or `tls`). With `tls` the endpoint
//! serves HTTPS and requires a client certificate chaining to `client_ca` ([`tls`]: refused in
//! the handshake, counted in `zonegate_admin_tls_refused_total`). With a token every request must
//! carry `Authorization: Bearer <token>` (or `?token=` for the browser's EventSource, which
//! cannot set headers); the comparison is constant-time. With both, both are required.
//! Everything here is read-only: the
//! endpoint cannot change the policy or the audit trail.
//!
//! The gateway crate keeps the figures ([`zonegate_gateway::Metrics`]) and knows nothing of
//! HTTP; this crate only renders them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use zonegate_gateway::Metrics;

pub mod tls;

pub use tls::tls_config;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// How often `/api/events` sends the state.
const EVENT_PERIOD: Duration = Duration::from_secs(1);
/// Largest token file read (a token is a line, not a document).
const MAX_TOKEN_BYTES: u64 = 4096;

#[derive(Clone)]
struct App {
    metrics: Arc<Metrics>,
    token: Option<Arc<str>>,
}

/// A running admin endpoint.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    https: bool,
}

impl Admin {
    /// Binds `listen` and serves `metrics` until [`Admin::stop`]. `token`: the bearer token
    /// every request must carry (`None`: none, for loopback).
    pub async fn start(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        token: Option<String>,
    ) -> std::io::Result<Self> {
        Self::start_with_tls(listen, metrics, token, None).await
    }

    /// As [`Admin::start`]; with `tls` ([`tls_config`]) it serves HTTPS and every client must
    /// present a certificate chaining to the configuration's `client_ca`.
    pub async fn start_with_tls(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        token: Option<String>,
        tls: Option<Arc<zonegate_gateway::mbaps::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = router(App {
            metrics: Arc::clone(&metrics),
            token: token.map(Arc::from),
        });
        let https = tls.is_some();
        let tasks = match tls {
            None => vec![tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("admin endpoint stopped: {e}");
                }
            })],
            Some(config) => {
                let (incoming, acceptor) = tls::incoming(listener, addr, config, metrics);
                let server = tokio::spawn(async move {
                    if let Err(e) = axum::serve(incoming, app).await {
                        tracing::error!("admin endpoint stopped: {e}");
                    }
                });
                vec![acceptor, server]
            }
        };
        Ok(Self { addr, tasks, https })
    }

    /// The address it listens on (the port chosen when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint's base URL: `http://addr/`, or `https://addr/` with TLS.
    pub fn url(&self) -> String {
        format!(
            "{}://{}/",
            if self.https { "https" } else { "http" },
            self.addr
        )
    }

    /// Stops serving (open event streams are cut).
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Reads the bearer token from `path`: the first line, trimmed; an empty token is an error.
pub fn read_token(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "{}: {} bytes; a token file holds one line",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 {
        return Err(format!(
            "{}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .with_state(app)
}

/// Whether the request carries the token: `Authorization: Bearer T` or `?token=T`.
fn authorized(req: &Request, token: &str) -> bool {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    [from_header, from_query]
        .into_iter()
        .flatten()
        .any(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    // The page and its assets hold no data: a browser loads them before it can send the
    // token (the script then adds it to every data request).
    let asset = matches!(req.uri().path(), "/" | "/app.js" | "/app.css");
    if let Some(token) = app.token.as_ref().filter(|_| !asset) {
        if !authorized(&req, token) {
            let mut r = (StatusCode::UNAUTHORIZED, "bearer token required\n").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"zonegate\""),
            );
            return r;
        }
    }
    let mut r = next.run(req).await;
    // The page is the operator's: no framing by another site, no sniffing, no caching.
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:"),
    );
    r
}

fn with_type(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    with_type(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    with_type(APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css() -> Response {
    with_type(APP_CSS, "text/css; charset=utf-8")
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<App>) -> Response {
    let m = &app.metrics;
    let body = serde_json::json!({
        "ready": m.ready(),
        "listeners_up": m.listeners_up(),
        "audit_writable": m.audit_writable(),
    });
    let status = if m.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn state(State(app): State<App>) -> Response {
    axum::Json(app.metrics.snapshot()).into_response()
}

async fn events(State(app): State<App>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = stream::unfold((app.metrics, true), |(metrics, first)| async move {
        if !first {
            tokio::time::sleep(EVENT_PERIOD).await;
        }
        let ev = SseEvent::default()
            .event("state")
            .data(metrics.snapshot().to_string());
        Some((Ok(ev), (metrics, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 GET on a fresh connection; (status, headers+body text).
    async fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
        let mut s =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .unwrap()
                .unwrap();
        let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    #[tokio::test]
    async fn serves_metrics_health_page_and_state() {
        let m = Arc::new(Metrics::new());
        let admin = Admin::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&m), None)
            .await
            .unwrap();
        let (code, body) = get(admin.addr(), "/metrics", None).await;
        assert_eq!(code, 200);
        assert!(body.contains("application/openmetrics-text"), "{body}");
        assert!(body.contains("zonegate_build_info"), "{body}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");
        assert_eq!(get(admin.addr(), "/healthz", None).await.0, 200);
        // Not started by a gateway: no listener is up, so not ready.
        let (code, body) = get(admin.addr(), "/readyz", None).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("\"listeners_up\":false"), "{body}");
        let (code, body) = get(admin.addr(), "/", None).await;
        assert_eq!(code, 200);
        assert!(body.contains("<title>zonegate</title>"), "{body}");
        assert!(body.contains("x-frame-options: DENY"), "{body}");
        let (code, body) = get(admin.addr(), "/api/state", None).await;
        assert_eq!(code, 200);
        assert!(body.contains("\"recent\":[]"), "{body}");
        admin.stop();
    }

    #[tokio::test]
    async fn a_token_is_required_when_configured() {
        let m = Arc::new(Metrics::new());
        let token = "0123456789abcdef-token";
        let admin = Admin::start("127.0.0.1:0".parse().unwrap(), m, Some(token.to_owned()))
            .await
            .unwrap();
        let (code, body) = get(admin.addr(), "/metrics", None).await;
        assert_eq!(code, 401, "{body}");
        assert_eq!(
            get(admin.addr(), "/", None).await.0,
            200,
            "the page holds no data"
        );
        assert!(
            body.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{body}"
        );
        assert_eq!(
            get(admin.addr(), "/metrics", Some("wrong-token-0000000"))
                .await
                .0,
            401
        );
        assert_eq!(get(admin.addr(), "/metrics", Some(token)).await.0, 200);
        assert_eq!(
            get(admin.addr(), &format!("/api/state?token={token}"), None)
                .await
                .0,
            200
        );
        admin.stop();
    }

    #[tokio::test]
    async fn the_event_stream_sends_the_state_at_once() {
        let m = Arc::new(Metrics::new());
        let admin = Admin::start("127.0.0.1:0".parse().unwrap(), m, None)
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(admin.addr()).await.unwrap();
        s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(&got).contains("event: state") {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("text/event-stream"), "{text}");
        assert!(text.contains("event: state"), "{text}");
        admin.stop();
    }

    #[test]
    fn a_short_or_missing_token_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("zg-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").unwrap();
        assert!(read_token(&short).unwrap_err().contains("at least 16"));
        let good = dir.join("good");
        std::fs::write(&good, "  0123456789abcdef0123  \nsecond line\n").unwrap();
        assert_eq!(read_token(&good).unwrap(), "0123456789abcdef0123");
        assert!(read_token(&dir.join("absent")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
