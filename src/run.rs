//! One run kind for every model: the tagged run configuration (`RunConfig`), the run directory
//! read back whatever trained it (`Run`), its answers to questions, and the manifest every run
//! leaves.
//!
//! A config names its kind in a top-level `kind` key:
//!
//! | kind                  | network                                                   | config type |
//! | --------------------- | --------------------------------------------------------- | ----------- |
//! | `seq2seq`             | RNN encoder-decoder or decoder-only transformer           | [`ExperimentConfig`] |
//! | `coupled-transformer` | transformer over coupled positions (length generalisation) | [`LengthGenRunConfig`] |
//! | `pair-gru`            | GRU over aligned digit pairs (length generalisation)     | [`PairGruRunConfig`] |
//! | `regression`          | Brownlee's numbers-in, number-out LSTM or MLP             | [`MappingRunConfig`] |
//!
//! Files written before the tag existed carry no `kind`; their kind is told by their sections
//! (`lengthgen`, `pair_gru`, `mapping`), here and nowhere else.

pub use crate::config::long_addition::PairGruRunConfig;
use crate::config::long_addition::{LengthGenRunConfig, LongTask};
use crate::config::{ExperimentConfig, FORMAT_VERSION};
use crate::regression::MappingRunConfig;
use crate::rundir::{file_err, RunError, CONFIG};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The kinds of run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    Seq2seq,
    CoupledTransformer,
    PairGru,
    Regression,
}

impl RunKind {
    pub const ALL: [RunKind; 4] = [
        RunKind::Seq2seq,
        RunKind::CoupledTransformer,
        RunKind::PairGru,
        RunKind::Regression,
    ];

    /// The name used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Seq2seq => "seq2seq",
            RunKind::CoupledTransformer => "coupled-transformer",
            RunKind::PairGru => "pair-gru",
            RunKind::Regression => "regression",
        }
    }

    fn parse(s: &str) -> Result<RunKind, RunError> {
        RunKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = RunKind::ALL.iter().map(|k| k.name()).collect();
                RunError::Config(format!(
                    "unknown run kind {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every run's configuration: one variant per [`RunKind`]. (A few configs per command: their
/// difference in size does not matter.)
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum RunConfig {
    Seq2seq(ExperimentConfig),
    CoupledTransformer(LengthGenRunConfig),
    PairGru(PairGruRunConfig),
    Regression(MappingRunConfig),
}

impl From<ExperimentConfig> for RunConfig {
    fn from(c: ExperimentConfig) -> Self {
        RunConfig::Seq2seq(c)
    }
}

impl RunConfig {
    pub fn kind(&self) -> RunKind {
        match self {
            RunConfig::Seq2seq(_) => RunKind::Seq2seq,
            RunConfig::CoupledTransformer(_) => RunKind::CoupledTransformer,
            RunConfig::PairGru(_) => RunKind::PairGru,
            RunConfig::Regression(_) => RunKind::Regression,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            RunConfig::Seq2seq(c) => &c.name,
            RunConfig::CoupledTransformer(c) => &c.name,
            RunConfig::PairGru(c) => &c.name,
            RunConfig::Regression(c) => &c.name,
        }
    }

    pub fn set_name(&mut self, name: &str) {
        let slot = match self {
            RunConfig::Seq2seq(c) => &mut c.name,
            RunConfig::CoupledTransformer(c) => &mut c.name,
            RunConfig::PairGru(c) => &mut c.name,
            RunConfig::Regression(c) => &mut c.name,
        };
        *slot = name.to_string();
    }

    pub fn description(&self) -> &str {
        match self {
            RunConfig::Seq2seq(c) => &c.description,
            RunConfig::CoupledTransformer(c) => &c.description,
            RunConfig::PairGru(c) => &c.description,
            RunConfig::Regression(c) => &c.description,
        }
    }

    pub fn seed(&self) -> u64 {
        match self {
            RunConfig::Seq2seq(c) => c.seed,
            RunConfig::CoupledTransformer(c) => c.seed,
            RunConfig::PairGru(c) => c.seed,
            RunConfig::Regression(c) => c.mapping.seed,
        }
    }

    pub fn set_seed(&mut self, seed: u64) {
        match self {
            RunConfig::Seq2seq(c) => c.seed = seed,
            RunConfig::CoupledTransformer(c) => c.seed = seed,
            RunConfig::PairGru(c) => c.seed = seed,
            RunConfig::Regression(c) => c.mapping.seed = seed,
        }
    }

    /// Checks that the configuration can run (every number within its bounds).
    pub fn validate(&mut self) -> Result<(), RunError> {
        let version = match self {
            RunConfig::Seq2seq(c) => c.format_version,
            RunConfig::CoupledTransformer(c) => c.format_version,
            RunConfig::PairGru(c) => c.format_version,
            RunConfig::Regression(c) => c.format_version,
        };
        if version > FORMAT_VERSION {
            return Err(RunError::Config(format!(
                "config format version {version} is newer than this seqcalc understands ({FORMAT_VERSION}); upgrade seqcalc"
            )));
        }
        match self {
            RunConfig::Seq2seq(c) => c
                .build()
                .map(|_| ())
                .map_err(|e| RunError::Config(e.to_string())),
            RunConfig::CoupledTransformer(c) => c.build().map(|_| ()).map_err(RunError::Config),
            RunConfig::PairGru(c) => c.pair_gru.validate().map_err(RunError::Config),
            RunConfig::Regression(c) => c.mapping.validate().map_err(RunError::Config),
        }
    }

    /// The config as TOML, its `kind` first.
    pub fn to_toml(&self) -> String {
        let body = match self {
            RunConfig::Seq2seq(c) => c.to_toml(),
            RunConfig::CoupledTransformer(c) => c.to_toml(),
            RunConfig::PairGru(c) => toml::to_string_pretty(c).expect("config serialises"),
            RunConfig::Regression(c) => toml::to_string_pretty(c).expect("config serialises"),
        };
        format!("kind = \"{}\"\n{body}", self.kind())
    }

    /// The config as pretty JSON (a run directory's `config.json`), its `kind` first.
    pub fn to_json(&self) -> String {
        let body = match self {
            RunConfig::Seq2seq(c) => serde_json::to_string_pretty(c),
            RunConfig::CoupledTransformer(c) => serde_json::to_string_pretty(c),
            RunConfig::PairGru(c) => serde_json::to_string_pretty(c),
            RunConfig::Regression(c) => serde_json::to_string_pretty(c),
        }
        .expect("config serialises");
        // Every body is a non-empty object: "{\n  \"format_version\": ...".
        let rest = body.strip_prefix("{\n").unwrap_or(&body);
        format!("{{\n  \"kind\": \"{}\",\n{rest}", self.kind())
    }

    /// Parses a TOML or JSON config (chosen by the first non-blank character). Errors are one
    /// line, with the line and column for TOML.
    pub fn parse(text: &str) -> Result<RunConfig, RunError> {
        if text.trim_start().starts_with('{') {
            Self::parse_json(text)
        } else {
            Self::parse_toml(text)
        }
    }

    /// Parses a JSON config (a run directory's `config.json`).
    pub fn parse_json(text: &str) -> Result<RunConfig, RunError> {
        let mut value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| RunError::Config(format!("not valid JSON: {e}")))?;
        let Some(map) = value.as_object_mut() else {
            return Err(RunError::Config("a config is a JSON object".into()));
        };
        let kind = match map.remove("kind") {
            Some(serde_json::Value::String(s)) => RunKind::parse(&s)?,
            Some(other) => {
                return Err(RunError::Config(format!(
                    "kind must be a string, not {other}"
                )))
            }
            None => legacy_kind(|k| map.contains_key(k)),
        };
        let bad = |e: serde_json::Error| RunError::Config(format!("invalid JSON config: {e}"));
        Ok(match kind {
            RunKind::Seq2seq => RunConfig::Seq2seq(
                ExperimentConfig::parse_json(&value.to_string())
                    .map_err(|e| RunError::Config(e.to_string()))?,
            ),
            RunKind::CoupledTransformer => {
                RunConfig::CoupledTransformer(serde_json::from_value(value).map_err(bad)?)
            }
            RunKind::PairGru => RunConfig::PairGru(serde_json::from_value(value).map_err(bad)?),
            RunKind::Regression => {
                RunConfig::Regression(serde_json::from_value(value).map_err(bad)?)
            }
        })
    }

    fn parse_toml(text: &str) -> Result<RunConfig, RunError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| RunError::Config(crate::config::toml_error(text, &e)))?;
        let kind = match table.get("kind") {
            Some(toml::Value::String(s)) => RunKind::parse(s)?,
            Some(other) => {
                return Err(RunError::Config(format!(
                    "kind must be a string, not {other}"
                )))
            }
            None => legacy_kind(|k| table.contains_key(k)),
        };
        // The kind's own parser reads the same text with the `kind` line blanked, so its
        // errors keep their line numbers.
        let body = blank_kind_line(text);
        let bad = |e: toml::de::Error| RunError::Config(crate::config::toml_error(&body, &e));
        Ok(match kind {
            RunKind::Seq2seq => RunConfig::Seq2seq(
                ExperimentConfig::parse_toml(&body).map_err(|e| RunError::Config(e.to_string()))?,
            ),
            RunKind::CoupledTransformer => {
                RunConfig::CoupledTransformer(toml::from_str(&body).map_err(bad)?)
            }
            RunKind::PairGru => RunConfig::PairGru(toml::from_str(&body).map_err(bad)?),
            RunKind::Regression => RunConfig::Regression(toml::from_str(&body).map_err(bad)?),
        })
    }
}

/// The kind of a config written without a `kind` key, told by its sections.
fn legacy_kind(has: impl Fn(&str) -> bool) -> RunKind {
    if has("lengthgen") {
        RunKind::CoupledTransformer
    } else if has("pair_gru") {
        RunKind::PairGru
    } else if has("mapping") {
        RunKind::Regression
    } else {
        RunKind::Seq2seq
    }
}

/// The TOML text with its top-level `kind = ...` line (before the first table) made blank.
fn blank_kind_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut top = true;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            top = false;
        }
        let key = t.split('=').next().unwrap_or("").trim();
        if top && (key == "kind" || key == "\"kind\"") && t.contains('=') {
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Reads a run directory's `config.json` (once) and parses it.
pub fn load_config(dir: &Path) -> Result<RunConfig, RunError> {
    check_run_dir(dir)?;
    let path = dir.join(CONFIG);
    let text = crate::fsutil::read_bounded(&path, crate::config::limits::INPUT_BYTES).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::NotFound => file_err(
                &path,
                "missing: not a run directory, or a run that has not started",
            ),
            _ => file_err(&path, e),
        },
    )?;
    RunConfig::parse_json(&text).map_err(|e| file_err(&path, e))
}

/// Refuses a path that is not a directory, with what it is instead.
pub fn check_run_dir(dir: &Path) -> Result<(), RunError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(file_err(dir, "no such run directory"))
        }
        Err(e) => Err(file_err(dir, e)),
        Ok(m) if !m.is_dir() => Err(file_err(dir, "is a file, not a run directory")),
        Ok(_) => Ok(()),
    }
}

/// Writes `dir/config.json` atomically, its `kind` first.
pub fn save_config(dir: &Path, cfg: &RunConfig) -> Result<(), RunError> {
    crate::fsutil::write_atomic(&dir.join(CONFIG), cfg.to_json().as_bytes())
        .map_err(RunError::Write)
}

/// Where a run came from: written at the start of training and again at its end.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub seqcalc_version: String,
    /// The commit the binary was built from, where the build could tell.
    pub git_commit: Option<String>,
    pub command_line: Vec<String>,
    pub kind: RunKind,
    pub threads: usize,
    pub cpu: String,
    /// The kernels in use: avx512, avx2 or portable.
    pub kernel_level: String,
    /// UTC, RFC 3339.
    pub started: String,
    pub ended: Option<String>,
    /// How the run ended: finished, interrupted, or failed.
    pub outcome: Option<String>,
    /// FNV-1a 64 of the training data: the questions and answers for a fixed data set, or the
    /// generator's settings and seed for data drawn fresh at every step.
    pub data_hash: String,
}

pub const MANIFEST: &str = "manifest.json";

impl Manifest {
    /// A manifest for a run starting now.
    pub fn start(kind: RunKind, threads: usize, data_hash: u64) -> Manifest {
        Manifest {
            seqcalc_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: option_env!("SEQCALC_GIT_COMMIT")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            command_line: std::env::args().collect(),
            kind,
            threads,
            cpu: cpu_model(),
            kernel_level: kernel_level().to_string(),
            started: utc_now(),
            ended: None,
            outcome: None,
            data_hash: format!("fnv1a64:{data_hash:016x}"),
        }
    }

    /// The manifest of the run in `dir`, if it has a readable one (runs made before manifests
    /// existed, or still training for the first time, have none).
    pub fn load(dir: &Path) -> Option<Manifest> {
        let text = std::fs::read(dir.join(MANIFEST)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn save(&self, dir: &Path) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(self).expect("manifest serialises");
        crate::fsutil::write_atomic(&dir.join(MANIFEST), text.as_bytes()).map_err(RunError::Write)
    }

    /// Records the end of the run and saves it.
    pub fn finish(&mut self, dir: &Path, outcome: &str) -> Result<(), RunError> {
        self.ended = Some(utc_now());
        self.outcome = Some(outcome.to_string());
        self.save(dir)
    }
}

/// The kernels this CPU runs.
pub fn kernel_level() -> &'static str {
    match crate::nn::simd_level() {
        crate::nn::SimdLevel::Avx512 => "avx512",
        crate::nn::SimdLevel::Avx2 => "avx2",
        _ => "portable",
    }
}

/// The CPU's model name (Linux), or the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The current time in UTC as RFC 3339, to the second.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_rfc3339(secs)
}

/// Seconds since 1970 as RFC 3339 UTC (proleptic Gregorian calendar).
pub fn utc_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// FNV-1a 64 over byte strings, each followed by a 0xff separator.
pub fn fnv1a64<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = crate::fsutil::Fnv1a::default();
    for part in parts {
        h.update(part);
        h.update(&[0xff]);
    }
    h.finish()
}

/// The data hash of a run whose data is drawn fresh at every step: its settings and seed.
pub fn spec_hash(cfg: &RunConfig) -> u64 {
    fnv1a64([cfg.to_json().as_bytes()])
}

/// A run's training curve as per-epoch records, whatever its kind. Runs trained by steps
/// record evaluations by step: each becomes a record whose `epoch` is the step, whose losses
/// are the training loss and whose exact match is the mean over the evaluated lengths.
pub fn load_history(dir: &Path) -> Result<crate::history::History, RunError> {
    use crate::history::History;
    let kind = load_config(dir)?.kind();
    let path = dir.join("history.json");
    let text = crate::fsutil::read_bounded(&path, crate::config::limits::INPUT_BYTES).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::NotFound => file_err(
                &path,
                format!("missing: this {kind} run has no training history (yet)"),
            ),
            _ => file_err(&path, e),
        },
    )?;
    let bad = |e: serde_json::Error| file_err(&path, format!("not a training history: {e}"));
    match kind {
        RunKind::CoupledTransformer | RunKind::PairGru => {
            let evals: Vec<crate::train::steps::EvalRecord> =
                serde_json::from_str(&text).map_err(bad)?;
            Ok(crate::train::steps::as_history(&evals))
        }
        _ => History::from_json(&text).map_err(bad),
    }
}

/// A trained model of any kind, read back from its run directory, ready to answer.
#[allow(clippy::large_enum_variant)]
pub enum Run {
    Seq2seq {
        run: crate::rundir::LoadedRun,
        engine: crate::model::Seq2SeqEngine<f32>,
    },
    CoupledTransformer {
        run: CoupledRun,
        engine: crate::model::coupled::CoupledAdditionEngine,
    },
    PairGru {
        cfg: PairGruRunConfig,
        engine: crate::model::pair_gru::PairGruEngine,
        params: Vec<f32>,
    },
    Regression(crate::regression::MappingRun),
}

/// A coupled-transformer run read back: its config, model and weights.
pub struct CoupledRun {
    pub cfg: LengthGenRunConfig,
    pub model: crate::nn::transformer::Transformer,
    pub params: Vec<f32>,
}

/// One answer to one question.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// The answer as a person writes it.
    pub output: String,
    /// The product of the chosen symbols' probabilities (models with a softmax output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The worked answer (models trained with a scratchpad).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<String>,
    /// The raw output of a regression model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Whether the answer is right, where the question's task can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    /// What the model wrote, step by step in writing order, each symbol with its probability
    /// (the per-character confidences of models with a softmax output; see
    /// `Codec::written_steps`). Not part of `predict --jsonl`'s lines.
    #[serde(skip)]
    pub steps: Option<Vec<(char, f32)>>,
}

impl Run {
    /// Reads `dir/config.json` once, then the weights its kind needs, for `threads` workers.
    pub fn load(dir: &Path, threads: usize) -> Result<Run, RunError> {
        let threads = threads.clamp(1, crate::parallel::MAX_THREADS);
        Ok(match load_config(dir)? {
            RunConfig::Seq2seq(cfg) => {
                let run = crate::rundir::load_run_with(dir, cfg)?;
                let engine = crate::model::Seq2SeqEngine::new(run.model.clone(), threads);
                Run::Seq2seq { run, engine }
            }
            RunConfig::CoupledTransformer(cfg) => {
                let model = cfg.build().map_err(|e| file_err(&dir.join(CONFIG), e))?;
                let params = crate::rundir::load_flat(dir, &model.layout)?;
                let engine =
                    crate::model::coupled::CoupledAdditionEngine::new(model.clone(), threads);
                let run = CoupledRun { cfg, model, params };
                Run::CoupledTransformer { run, engine }
            }
            RunConfig::PairGru(cfg) => {
                let (engine, params) =
                    crate::model::pair_gru::load_weights(dir, &cfg.pair_gru, threads)?;
                Run::PairGru {
                    cfg,
                    engine,
                    params,
                }
            }
            RunConfig::Regression(cfg) => {
                Run::Regression(crate::regression::MappingRun::from_config(dir, cfg)?)
            }
        })
    }

    pub fn kind(&self) -> RunKind {
        match self {
            Run::Seq2seq { .. } => RunKind::Seq2seq,
            Run::CoupledTransformer { .. } => RunKind::CoupledTransformer,
            Run::PairGru { .. } => RunKind::PairGru,
            Run::Regression(_) => RunKind::Regression,
        }
    }

    /// How many questions to answer at once: a batch fits the inference memory budget.
    pub fn batch_rows(&self) -> usize {
        match self {
            Run::Seq2seq { run, .. } => run
                .model
                .inference_rows(crate::model::INFERENCE_BUDGET_BYTES)
                .max(1),
            _ => 256,
        }
    }

    /// A question this run's task can answer, for hints.
    pub fn example_question(&self) -> String {
        match self {
            Run::Seq2seq { run, .. } => crate::task::generate(&run.cfg.task, 1, 12_345)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map_or_else(|| "12+345".to_string(), |p| p.question),
            Run::CoupledTransformer { run, .. } => match run.cfg.lengthgen.task {
                LongTask::Addition => format!("{}+1", "9".repeat(30)),
                LongTask::ManyOperandAddition => "12+345+6789+99999".into(),
                LongTask::Multiplication => "1234*567".into(),
            },
            Run::PairGru { .. } => format!("{}+1", "9".repeat(30)),
            Run::Regression(_) => "12+57".into(),
        }
    }

    /// For the long-addition kinds, `a+b` with operands of at most `digits` digits (default:
    /// the longest the run trained on): the domain `eval --exhaustive` asks them. `None` for
    /// the other kinds, whose task is in their config.
    pub fn addition_domain(&self, digits: Option<usize>) -> Option<crate::task::TaskConfig> {
        let trained = match self {
            Run::CoupledTransformer { run, .. } if run.cfg.lengthgen.task.is_addition() => {
                run.cfg.lengthgen.train.max_digits
            }
            Run::PairGru { cfg, .. } => cfg.pair_gru.max_digits,
            _ => return None,
        };
        Some(crate::task::TaskConfig {
            digits: digits.unwrap_or(trained),
            min_digits: 1,
            ..crate::task::TaskConfig::default()
        })
    }

    /// Answers each question, or says why it cannot be asked (one line).
    pub fn answer(&mut self, questions: &[&str]) -> Vec<Result<Answer, String>> {
        match self {
            Run::Seq2seq { run, engine } => answer_seq2seq(run, engine, questions),
            Run::CoupledTransformer { run, engine } if !run.cfg.lengthgen.task.is_addition() => {
                let product = run.cfg.lengthgen.task == LongTask::Multiplication;
                answer_levels(questions, product, engine, &run.params)
            }
            Run::CoupledTransformer { run, engine } => {
                answer_operands(questions, |ops| engine.greedy(&run.params, ops))
            }
            Run::PairGru { engine, params, .. } => {
                answer_operands(questions, |ops| engine.answer(params, ops))
            }
            Run::Regression(m) => questions
                .iter()
                .map(|q| {
                    let nums = m.parse(q)?;
                    let y = m.predict(std::slice::from_ref(&nums))[0];
                    let want: u64 = nums.iter().map(|&x| u64::from(x)).sum();
                    let output = format!("{}", y.round());
                    Ok(Answer {
                        correct: Some(output == want.to_string()),
                        output,
                        confidence: None,
                        work: None,
                        value: Some((y * 1e4).round() / 1e4),
                        steps: None,
                    })
                })
                .collect(),
        }
    }
}

/// Answers many-operand additions or products with a two-level scratchpad model: it writes
/// its whole working from the question, and the answer is read from it.
fn answer_levels(
    questions: &[&str],
    product: bool,
    engine: &mut crate::model::coupled::CoupledAdditionEngine,
    params: &[f32],
) -> Vec<Result<Answer, String>> {
    use crate::codec::levels::{parse_question, read_answer, sequence, work_text};
    questions
        .iter()
        .map(|text| {
            let q = parse_question(text, product)?;
            let seq = sequence(&q);
            let written = engine.greedy_layout(params, &seq, &[seq.tokens[..seq.prompt].to_vec()]);
            let (w, _) = &written[0];
            let got = read_answer(&seq, w);
            let output = crate::task::many_operands::decimal(&got);
            let want = crate::task::many_operands::decimal(&q.answer());
            Ok(Answer {
                correct: Some(output == want),
                output,
                confidence: None,
                work: Some(work_text(&seq, w)),
                value: None,
                steps: None,
            })
        })
        .collect()
}

fn answer_seq2seq(
    run: &crate::rundir::LoadedRun,
    engine: &mut crate::model::Seq2SeqEngine<f32>,
    questions: &[&str],
) -> Vec<Result<Answer, String>> {
    let (t_in, t_out, v) = (
        run.codec.input_len(),
        run.codec.output_len(),
        run.codec.vocab_size(),
    );
    let mut enc = Vec::new();
    let mut ok_rows = Vec::new();
    let mut results: Vec<Result<Answer, String>> = Vec::with_capacity(questions.len());
    let mut buf = vec![0u8; t_in];
    for (i, q) in questions.iter().enumerate() {
        match run.codec.encode_input(q.trim(), &mut buf) {
            Ok(()) => {
                enc.extend_from_slice(&buf);
                ok_rows.push(i);
                results.push(Err(String::new()));
            }
            Err(e) => results.push(Err(e.to_string())),
        }
    }
    if !ok_rows.is_empty() {
        let mut probs = Vec::new();
        engine.predict(&run.params, &enc, ok_rows.len(), &mut probs);
        for (k, &i) in ok_rows.iter().enumerate() {
            let row = &probs[k * t_out * v..(k + 1) * t_out * v];
            let (output, confidence) = run.codec.decode_probs(row);
            let correct = crate::task::solve(&run.cfg.task, questions[i].trim())
                .ok()
                .map(|p| p.answer == output);
            results[i] = Ok(Answer {
                output,
                confidence: Some((confidence * 1e6).round() / 1e6),
                work: run.codec.decode_probs_work(row),
                value: None,
                correct,
                steps: Some(run.codec.written_steps(row)),
            });
        }
    }
    results
}

/// Answers additions of long operands with a model that reads them aligned.
fn answer_operands(
    questions: &[&str],
    mut answer: impl FnMut(&[crate::codec::coupled::Operands]) -> Vec<crate::model::coupled::Answer>,
) -> Vec<Result<Answer, String>> {
    use crate::codec::coupled::{parse_question, to_decimal};
    use crate::eval::lengths::check_answer;
    let parsed: Vec<Result<_, String>> = questions.iter().map(|q| parse_question(q)).collect();
    let ok: Vec<_> = parsed
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut answers = answer(&ok).into_iter().zip(ok.iter());
    parsed
        .into_iter()
        .map(|r| {
            r.map(|_| {
                let (g, o) = answers.next().expect("one answer per question");
                Answer {
                    output: to_decimal(&g.digits),
                    confidence: None,
                    work: None,
                    value: None,
                    correct: Some(check_answer(o, &g).exact),
                    steps: None,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_toml_and_json_with_its_tag() {
        let configs = [
            RunConfig::Seq2seq(ExperimentConfig::default()),
            RunConfig::CoupledTransformer(crate::config::long_addition::experiment_config(true)),
            RunConfig::PairGru(PairGruRunConfig::default()),
            RunConfig::Regression(MappingRunConfig {
                format_version: FORMAT_VERSION,
                name: "m".into(),
                description: String::new(),
                mapping: crate::regression::MappingConfig::brownlee(
                    crate::regression::MappingModel::Lstm,
                ),
            }),
        ];
        for c in configs {
            let toml = c.to_toml();
            assert!(
                toml.starts_with(&format!("kind = \"{}\"\n", c.kind())),
                "{toml}"
            );
            assert_eq!(RunConfig::parse(&toml).unwrap(), c, "{toml}");
            let json = c.to_json();
            assert!(
                json.starts_with(&format!("{{\n  \"kind\": \"{}\",", c.kind())),
                "{json}"
            );
            assert_eq!(RunConfig::parse(&json).unwrap(), c, "{json}");
        }
    }

    #[test]
    fn configs_without_a_tag_are_told_by_their_sections() {
        let lg = crate::config::long_addition::experiment_config(true);
        let text = lg.to_toml();
        assert_eq!(
            RunConfig::parse(&text).unwrap().kind(),
            RunKind::CoupledTransformer
        );
        let s = ExperimentConfig::default().to_json();
        assert_eq!(RunConfig::parse(&s).unwrap().kind(), RunKind::Seq2seq);
    }

    #[test]
    fn toml_errors_keep_their_line_numbers_and_unknown_kinds_are_named() {
        let e = RunConfig::parse("kind = \"seq2seq\"\nseed = 1\n[model]\nhiden = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4"), "{e}");
        let e = RunConfig::parse("kind = \"lstm\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown run kind \"lstm\""), "{e}");
        let e = RunConfig::parse("kind = 3\n").unwrap_err().to_string();
        assert!(e.contains("kind must be a string"), "{e}");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339(1_796_601_599), "2026-12-06T23:59:59Z");
    }
}
