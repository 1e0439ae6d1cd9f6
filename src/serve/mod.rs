//! The web server behind `seqcalc serve`: pages and a JSON API over the run directories of one
//! runs directory, live curves pushed as server-sent events, a playground that asks a run
//! questions, and trainings started, stopped and resumed from the browser on the server's cores.
//!
//! Everything shown is read from run directories (runs trained from the shell appear too), and
//! every training is a `RunConfig` trained by `seqcalc::training::train_with`, the function `train`
//! uses, into a normal run directory.
//!
//! Safety: run and file names from requests are checked with `rundir::validate_name` and then
//! looked up as plain directory entries (symlinks refused); requests that change anything need
//! the access token or a same-origin browser request; on loopback, requests naming another host
//! are refused (DNS rebinding); bodies and URLs are bounded.

pub mod play;
pub mod runs;
pub mod trainer;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest request body accepted (a train form or a question).
pub const MAX_BODY: usize = 16 * 1024;
/// The longest request target (path and query) accepted.
pub const MAX_URI: usize = 2048;
/// The cookie that carries the access token once a browser has shown it.
const COOKIE: &str = "seqcalc_token";

/// What every handler shares.
pub struct App {
    /// The runs directory, canonical.
    pub runs_dir: PathBuf,
    /// The access token: needed for everything when bound beyond loopback, and for changes
    /// that do not come from a page of this server.
    pub token: String,
    /// Bound to a loopback address only.
    pub loopback: bool,
    pub trainer: trainer::Trainer,
    pub models: play::Models,
}

pub type Shared = Arc<App>;

/// An error answered as JSON `{"error": ...}` with a status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::CONFLICT, msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 });
        (self.0, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The directory of the run called `name`, after checking the name and that it is a real
/// directory directly inside the runs directory (not a symlink, not elsewhere).
pub fn run_dir(app: &App, name: &str) -> ApiResult<PathBuf> {
    let dir =
        seqcalc::rundir::run_path(&app.runs_dir, name).map_err(|e| ApiError::bad(e.to_string()))?;
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(m) if m.file_type().is_symlink() => Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("run {name:?} is a symbolic link; only directories inside the runs directory are served"),
        )),
        Ok(_) => Err(ApiError::not_found(format!("{name:?} is not a run directory"))),
        Err(_) => Err(ApiError::not_found(format!("no run called {name:?}"))),
    }
}

/// The token-protected, bounded router.
pub fn router(app: Shared) -> Router {
    let api = Router::new()
        .route("/api/runs", get(runs::list))
        .route("/api/runs/{name}", get(runs::detail))
        .route("/api/runs/{name}/events", get(runs::events))
        .route("/api/runs/{name}/files/{file}", get(runs::file))
        .route("/api/runs/{name}/answer", post(play::answer))
        .route("/api/runs/{name}/samples", get(play::samples))
        .route("/api/runs/{name}/stop", post(trainer::stop))
        .route("/api/runs/{name}/resume", post(trainer::resume))
        .route("/api/train", post(trainer::start))
        .route("/api/trainings", get(trainer::status))
        .route("/api/experiments", get(trainer::experiments));
    Router::new()
        .route("/", get(page))
        .route("/runs/{name}", get(page))
        .route("/play", get(page))
        .route("/train", get(page))
        .route("/assets/app.js", get(asset_js))
        .route("/assets/app.css", get(asset_css))
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such page")
}

const INDEX: &str = include_str!("../../assets/serve/index.html");
const APP_JS: &str = include_str!("../../assets/serve/app.js");
const APP_CSS: &str = include_str!("../../assets/serve/app.css");

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn asset_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn asset_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

/// Constant-time comparison of a presented token with the server's.
fn token_matches(app: &App, presented: &str) -> bool {
    let (a, b) = (presented.as_bytes(), app.token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request presents: the `X-Seqcalc-Token` header, a bearer token, the cookie, or
/// `?token=` in the URL; and whether it came in a header (which a cross-site page cannot set).
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> (Option<String>, bool) {
    let h = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(t) = headers.get("x-seqcalc-token").and_then(|v| v.to_str().ok()) {
        return (Some(t.to_string()), true);
    }
    if let Some(t) = h(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")) {
        return (Some(t.to_string()), true);
    }
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string());
    if from_cookie.is_some() {
        return (from_cookie, false);
    }
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_string())
    });
    (from_query, false)
}

/// Whether a browser says the request comes from a page of this server: its `Origin` names
/// the host the request was sent to, or (without `Origin`) `Sec-Fetch-Site` is same-origin.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin.strip_prefix("http://").is_some_and(|o| o == host),
        (Some(_), None) => false,
        (None, _) => get("sec-fetch-site") == Some("same-origin"),
    }
}

/// Whether a `Host` header names this machine's loopback (any port).
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
        _ => host,
    };
    name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Bounds the URL, checks the host, the token and the origin of every request.
async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let refuse = |status: StatusCode, msg: &str| ApiError(status, msg.to_string()).into_response();
    let uri = req.uri();
    if uri.to_string().len() > MAX_URI {
        return refuse(StatusCode::URI_TOO_LONG, "request target too long");
    }
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if app.loopback && !host.is_some_and(loopback_host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers requests to localhost only",
        );
    }
    let (token, in_header) = presented_token(headers, uri.query());
    let authenticated = token.as_deref().is_some_and(|t| token_matches(&app, t));
    if token.is_some() && !authenticated {
        return refuse(StatusCode::UNAUTHORIZED, "wrong access token");
    }
    if !app.loopback && !authenticated {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this server needs its access token: open the address it printed at start (with ?token=...)",
        );
    }
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating && !(authenticated && in_header) && !same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "changes need a request from this server's own pages, or the access token in an X-Seqcalc-Token header",
        );
    }
    // A token shown in the URL becomes a cookie, so the pages' own requests carry it.
    let set_cookie =
        authenticated && !in_header && uri.query().is_some_and(|q| q.contains("token="));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        "nosniff".parse().expect("valid"),
    );
    h.insert(header::X_FRAME_OPTIONS, "DENY".parse().expect("valid"));
    h.insert(
        header::REFERRER_POLICY,
        "no-referrer".parse().expect("valid"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
            .parse()
            .expect("valid"),
    );
    if set_cookie {
        if let Ok(v) = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", app.token).parse()
        {
            h.insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A fresh random access token (128 bits, hex).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The runs directory, created if missing, made canonical.
pub fn prepare_runs_dir(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    dir.canonicalize()
}
