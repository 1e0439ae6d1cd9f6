//! The runs: the list, one run's record, its files, and its live updates as server-sent events.

use super::{run_dir, ApiError, ApiResult, Shared};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seqcalc::history::EpochRecord;
use seqcalc::run::{self, RunConfig, RunKind};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// How often a live stream looks for news.
const TICK: Duration = Duration::from_millis(250);
/// Live streams open at once; more are refused.
pub const MAX_STREAMS: usize = 512;
/// The largest run file served.
const MAX_FILE: u64 = 8 << 20;
/// Run files served, by extension, with their content type.
const SERVED: &[(&str, &str)] = &[
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("json", "application/json"),
    ("csv", "text/csv; charset=utf-8"),
    ("toml", "text/plain; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
];
/// The files every run of its kind writes: the rest are evaluations and other records.
const OWN_FILES: &[&str] = &[
    "config.json",
    "manifest.json",
    "history.json",
    "history.csv",
    "curves.svg",
    "curves.png",
];

/// One line of the runs table.
#[derive(Serialize)]
pub struct Summary {
    pub name: String,
    pub kind: String,
    pub task: String,
    pub model: String,
    /// training, stopping, finished, stopped, failed, or unknown (no end on record).
    pub status: String,
    /// "epochs" or "steps".
    pub unit: &'static str,
    /// The last epoch or step on record.
    pub progress: usize,
    pub best_exact: Option<f64>,
    /// Evaluation files on record (images, results).
    pub evals: Vec<String>,
    pub started: Option<String>,
}

/// The task and model of a config, in a few words.
fn describe(cfg: &RunConfig) -> (String, String) {
    match cfg {
        RunConfig::Seq2seq(c) => {
            let t = &c.task;
            let kind = name(&t.kind);
            let task = match kind.as_str() {
                "arithmetic" => format!("{}-digit {}", t.digits, t.op),
                "expression" => format!(
                    "expressions of {}..{} terms, {}",
                    t.terms_min, t.terms_max, t.ops
                ),
                _ => format!("{kind} up to {}", t.pq_max),
            };
            let m = &c.model;
            let model = if name(&m.kind) == "transformer" {
                format!("transformer {}x{}", m.layers, m.hidden)
            } else {
                format!(
                    "{} {} x{}, {} decoder{}",
                    m.cell.keras_name(),
                    m.hidden,
                    m.layers,
                    name(&m.decoder),
                    if m.attention { ", attention" } else { "" }
                )
            };
            (task, model)
        }
        RunConfig::CoupledTransformer(c) => (
            format!("addition up to {} digits", c.lengthgen.train.max_digits),
            format!(
                "coupled transformer {}x{}",
                c.lengthgen.model.layers, c.lengthgen.model.dim
            ),
        ),
        RunConfig::PairGru(c) => (
            format!("addition up to {} digits", c.pair_gru.max_digits),
            format!("pair GRU {}", c.pair_gru.hidden),
        ),
        RunConfig::Regression(c) => (
            "numbers in, number out".to_string(),
            format!("{:?}", c.mapping.model).to_lowercase(),
        ),
    }
}

/// The serde name of a config enum (as written in config files).
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A run's status: the server's own trainings first, then the manifest's outcome.
fn status(app: &super::App, name: &str, dir: &Path) -> String {
    if let Some(s) = app.trainer.active_state(name) {
        return s.to_string();
    }
    // Trained by another process (the shell's `seqcalc train`): it holds the run's lock.
    if seqcalc::rundir::lock_holder(dir).is_some() {
        return "training".into();
    }
    let manifest = run::Manifest::load(dir);
    if let Some(outcome) = manifest.as_ref().and_then(|m| m.outcome.as_deref()) {
        // A run resumed from the shell keeps the previous manifest until it ends.
        let resumed_since = manifest.as_ref().and_then(|_| {
            Some(modified(&dir.join("history.json"))? > modified(&dir.join(run::MANIFEST))?)
        });
        if resumed_since != Some(true) {
            return match outcome {
                "interrupted" => "stopped".into(),
                o => o.into(),
            };
        }
    }
    if let Some(s) = app.trainer.last_state(name) {
        return s.to_string();
    }
    let recent = ["history.json", "checkpoint", "config.json"]
        .iter()
        .filter_map(|f| modified(&dir.join(f)))
        .max()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(120));
    if recent { "training" } else { "unknown" }.into()
}

/// The files of a run directory that may be served, sorted.
fn servable_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| content_type(n).is_some())
        .collect();
    v.sort();
    v
}

fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit_once('.')?.1;
    SERVED.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

fn summary(app: &super::App, name: &str, dir: &Path) -> Option<Summary> {
    let cfg = run::load_config(dir).ok()?;
    let (task, model) = describe(&cfg);
    let history = run::load_history(dir)
        .map(|h| h.records)
        .unwrap_or_default();
    let manifest = run::Manifest::load(dir);
    Some(Summary {
        name: name.to_string(),
        kind: cfg.kind().to_string(),
        task,
        model,
        status: status(app, name, dir),
        unit: match cfg.kind() {
            RunKind::CoupledTransformer | RunKind::PairGru => "steps",
            _ => "epochs",
        },
        progress: history.last().map_or(0, |r| r.epoch),
        best_exact: history.iter().map(|r| r.val_exact).reduce(f64::max),
        evals: servable_files(dir)
            .into_iter()
            .filter(|f| !OWN_FILES.contains(&f.as_str()))
            .collect(),
        started: manifest.map(|m| m.started),
    })
}

/// `GET /api/runs`: every run directory of the runs directory (symlinks and other entries are
/// left out), newest first.
pub async fn list(State(app): State<Shared>) -> ApiResult<Json<Vec<Summary>>> {
    tokio::task::spawn_blocking(move || {
        let mut runs: Vec<(SystemTime, Summary)> = std::fs::read_dir(&app.runs_dir)
            .map_err(ApiError::internal)?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| seqcalc::rundir::validate_name(n).is_ok())
            .filter_map(|n| {
                let dir = app.runs_dir.join(&n);
                let t = modified(&dir.join("config.json"))?;
                Some((t, summary(&app, &n, &dir)?))
            })
            .collect();
        runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        Ok(Json(runs.into_iter().map(|(_, s)| s).collect()))
    })
    .await
    .map_err(ApiError::internal)?
}

/// One run's full record.
#[derive(Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    pub config: serde_json::Value,
    pub manifest: Option<serde_json::Value>,
    pub history: Vec<EpochRecord>,
    pub files: Vec<String>,
    pub example: String,
    pub live: Option<super::trainer::Live>,
    /// Whether the playground can show this run's attention.
    pub attention: bool,
}

fn detail_of(app: &super::App, name: &str, dir: &Path) -> ApiResult<Detail> {
    let cfg = run::load_config(dir).map_err(|e| ApiError::not_found(e.to_string()))?;
    let summary = summary(app, name, dir)
        .ok_or_else(|| ApiError::not_found(format!("{name:?} is not a run directory")))?;
    let read_json = |f: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).ok()?).ok()
    };
    let example = match &cfg {
        RunConfig::Seq2seq(c) => seqcalc::task::generate(&c.task, 1, 12_345)
            .ok()
            .and_then(|v| v.into_iter().next())
            .map_or_else(|| "12+345".into(), |p| p.question),
        RunConfig::CoupledTransformer(_) | RunConfig::PairGru(_) => "123456789+987654321".into(),
        RunConfig::Regression(_) => "12+57".into(),
    };
    let attention = matches!(&cfg, RunConfig::Seq2seq(c) if c.model.attention);
    Ok(Detail {
        summary,
        config: read_json("config.json").unwrap_or_default(),
        manifest: read_json(run::MANIFEST),
        history: run::load_history(dir)
            .map(|h| h.records)
            .unwrap_or_default(),
        files: servable_files(dir),
        example,
        live: app.trainer.live(name),
        attention,
    })
}

/// `GET /api/runs/{name}`.
pub async fn detail(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Json<Detail>> {
    let dir = run_dir(&app, &name)?;
    tokio::task::spawn_blocking(move || detail_of(&app, &name, &dir).map(Json))
        .await
        .map_err(ApiError::internal)?
}

/// `GET /api/runs/{name}/files/{file}`: a record file of the run (images, JSON, CSV), never a
/// symlink or anything outside the run directory.
pub async fn file(
    State(app): State<Shared>,
    UrlPath((name, file)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let dir = run_dir(&app, &name)?;
    seqcalc::rundir::validate_name(&file)
        .map_err(|e| ApiError::bad(e.replace("run name", "file name")))?;
    let ctype = content_type(&file).ok_or_else(|| {
        ApiError::not_found(format!(
            "{file:?}: only images, JSON, CSV and text files of a run are served"
        ))
    })?;
    let path = dir.join(&file);
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|_| ApiError::not_found(format!("run {name:?} has no file {file:?}")))?;
    if !meta.is_file() {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{file:?} is not a plain file of the run"),
        ));
    }
    if meta.len() > MAX_FILE {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{file:?} is larger than {MAX_FILE} bytes"),
        ));
    }
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(&path))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

/// Live streams open now.
static STREAMS: AtomicUsize = AtomicUsize::new(0);

/// Counts a stream while it lives.
struct StreamSlot;

impl Drop for StreamSlot {
    fn drop(&mut self) {
        STREAMS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a stream last sent.
struct Follow {
    app: Shared,
    name: String,
    dir: std::path::PathBuf,
    history_sig: Option<(SystemTime, u64)>,
    status: String,
    live_version: u64,
    first: bool,
    _slot: StreamSlot,
}

/// One message of a live stream: what changed since the last.
#[derive(Serialize)]
struct Update {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<EpochRecord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<super::trainer::Live>,
}

impl Follow {
    /// The next update, waiting until something changed.
    async fn next(&mut self) -> Update {
        loop {
            if !self.first {
                tokio::time::sleep(TICK).await;
            }
            let first = std::mem::take(&mut self.first);
            let sig = std::fs::metadata(self.dir.join("history.json"))
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            let status = status(&self.app, &self.name, &self.dir);
            let version = self.app.trainer.version(&self.name);
            let history_changed = first || sig != self.history_sig;
            if !history_changed && status == self.status && version == self.live_version {
                continue;
            }
            self.history_sig = sig;
            self.status = status.clone();
            self.live_version = version;
            let history = if history_changed {
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || {
                    run::load_history(&dir)
                        .map(|h| h.records)
                        .unwrap_or_default()
                })
                .await
                .ok()
            } else {
                None
            };
            return Update {
                status,
                history,
                live: self.app.trainer.live(&self.name),
            };
        }
    }
}

/// `GET /api/runs/{name}/events`: server-sent events, one `update` whenever the run's history,
/// status or live progress changes. A client going away ends its stream.
pub async fn events(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let dir = run_dir(&app, &name)?;
    if STREAMS.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        STREAMS.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} live streams are open; try again later"),
        ));
    }
    let follow = Follow {
        app,
        name,
        dir,
        history_sig: None,
        status: String::new(),
        live_version: 0,
        first: true,
        _slot: StreamSlot,
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let u = f.next().await;
        let ev = Event::default()
            .event("update")
            .json_data(&u)
            .unwrap_or_default();
        Some((Ok::<_, std::convert::Infallible>(ev), f))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
