//! The playground: a run answers one question with its confidence per character, its work
//! (scratchpad models) and its attention over the question (RNN models with attention), read
//! back with `Run::load` as `predict` does. Loaded runs are kept while their weights are
//! unchanged; one question is answered at a time.

use super::{run_dir, ApiError, ApiResult, Shared};
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use seqcalc::run::Run;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The longest question accepted, in bytes.
pub const MAX_QUESTION: usize = 4096;
/// Loaded runs kept.
const KEEP: usize = 4;

type Loaded = Arc<Mutex<Run>>;

/// Runs read back for the playground, newest use last.
pub struct Models {
    cache: Mutex<Vec<(PathBuf, Option<SystemTime>, Loaded)>>,
    /// One answer at a time: inference shares the cores with training.
    turn: tokio::sync::Semaphore,
}

impl Default for Models {
    fn default() -> Self {
        Models {
            cache: Mutex::new(Vec::new()),
            turn: tokio::sync::Semaphore::new(1),
        }
    }
}

/// When the run's weights last changed (the kinds name their files differently: the newest
/// file of the directory).
fn weights_stamp(dir: &Path) -> Option<SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_string_lossy().ends_with(".safetensors")
                || e.file_name() == "config.json"
        })
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

impl Models {
    fn get(&self, dir: &Path) -> Result<Loaded, String> {
        let stamp = weights_stamp(dir);
        {
            let mut cache = self.cache.lock().expect("model cache");
            if let Some(i) = cache.iter().position(|(d, s, _)| d == dir && *s == stamp) {
                let hit = cache.remove(i);
                let run = hit.2.clone();
                cache.push(hit);
                return Ok(run);
            }
        }
        let run = Arc::new(Mutex::new(Run::load(dir, 1).map_err(|e| e.to_string())?));
        let mut cache = self.cache.lock().expect("model cache");
        cache.retain(|(d, _, _)| d != dir);
        if cache.len() >= KEEP {
            cache.remove(0);
        }
        cache.push((dir.to_path_buf(), stamp, run.clone()));
        Ok(run)
    }
}

/// Runs `f` on the run in `dir` (loaded, or from the cache) on a blocking thread, when it is
/// inference's turn.
async fn with_run<T: Send + 'static>(
    app: &Shared,
    dir: PathBuf,
    f: impl FnOnce(&mut Run) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let _turn = app
        .models
        .turn
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let run = app.models.get(&dir).map_err(ApiError::bad)?;
        let mut run = run.lock().expect("loaded run");
        f(&mut run)
    })
    .await
    .map_err(ApiError::internal)?
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub question: String,
}

/// One symbol the model wrote, and its probability.
#[derive(Serialize)]
pub struct Step {
    pub symbol: char,
    pub p: f32,
}

/// Attention of each written symbol over the question as typed.
#[derive(Serialize)]
pub struct Attention {
    /// The question's characters, as typed.
    pub columns: Vec<char>,
    /// Per written symbol: its weight on each typed character, then on all padding together.
    pub rows: Vec<(char, Vec<f32>, f32)>,
}

#[derive(Serialize)]
pub struct Reply {
    pub question: String,
    #[serde(flatten)]
    pub answer: seqcalc::run::Answer,
    /// What the model wrote, step by step (models with a softmax output).
    pub steps: Vec<Step>,
    /// Whether the model writes its answer backwards (least significant digit first).
    pub reversed_output: bool,
    pub attention: Option<Attention>,
    /// Why there is no attention to show.
    pub attention_note: Option<String>,
}

/// Answers `q` with the run (blocking).
fn ask(run: &mut Run, q: &str) -> Result<Reply, String> {
    let answer = run.answer(&[q]).pop().expect("one answer per question")?;
    let mut reply = Reply {
        question: q.to_string(),
        answer,
        steps: Vec::new(),
        reversed_output: false,
        attention: None,
        attention_note: None,
    };
    let Run::Seq2seq { run, engine } = run else {
        reply.attention_note = Some(format!(
            "a {} run has no attention to show",
            seqcalc::run::RunKind::name(run.kind())
        ));
        return Ok(reply);
    };
    let mut enc = vec![0u8; run.codec.input_len()];
    run.codec
        .encode_input(q.trim(), &mut enc)
        .map_err(|e| e.to_string())?;
    let mut probs = Vec::new();
    engine.predict(&run.params, &enc, 1, &mut probs);
    reply.steps = run
        .codec
        .written_steps(&probs)
        .into_iter()
        .map(|(symbol, p)| Step { symbol, p })
        .collect();
    reply.reversed_output = run.codec.config().reverse_output;
    if !run.cfg.model.attention && run.cfg.model.kind != seqcalc::model::ModelKind::Transformer {
        reply.attention_note =
            Some("this model has no attention (train with attention to see where it looks)".into());
        return Ok(reply);
    }
    match crate::cli::predict::attention_map(engine, run, q.trim()) {
        Ok(map) => {
            let typed: Vec<char> = q.trim().chars().collect();
            let rows = map
                .rows
                .into_iter()
                .map(|(sym, w)| {
                    let mut by_col = vec![0f32; typed.len()];
                    let mut pad = 0f32;
                    for (pos, weight) in w.into_iter().enumerate() {
                        match map.columns[pos] {
                            Some((_, c)) => by_col[c] += weight,
                            None => pad += weight,
                        }
                    }
                    (sym, by_col, pad)
                })
                .collect();
            reply.attention = Some(Attention {
                columns: typed,
                rows,
            });
        }
        Err(e) => reply.attention_note = Some(format!("{e:#}")),
    }
    Ok(reply)
}

/// `POST /api/runs/{name}/answer` with `{"question": ...}`: the run's answer, or the message
/// `predict` gives for a question it cannot ask (400).
pub async fn answer(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Json(q): Json<Question>,
) -> ApiResult<Json<Reply>> {
    let dir = run_dir(&app, &name)?;
    if q.question.len() > MAX_QUESTION {
        return Err(ApiError::bad(format!(
            "a question is at most {MAX_QUESTION} bytes"
        )));
    }
    if q.question.trim().is_empty() {
        return Err(ApiError::bad("type a question, e.g. 12+345"));
    }
    with_run(&app, dir, move |run| {
        ask(run, &q.question).map(Json).map_err(ApiError::bad)
    })
    .await
}

/// Fresh questions for the samples of a run this server is not training.
const SAMPLES: usize = 10;

/// `GET /api/runs/{name}/samples`: fresh questions of the run's task answered by its kept
/// weights, marked right or wrong. Long-addition runs get additions of the longest operands
/// they trained on, then twice and five times as long; regression runs get none.
pub async fn samples(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Json<Vec<super::trainer::LiveSample>>> {
    use seqcalc::run::RunConfig;
    let dir = run_dir(&app, &name)?;
    let cfg = seqcalc::run::load_config(&dir).map_err(|e| ApiError::not_found(e.to_string()))?;
    let problems: Vec<(String, String)> = match &cfg {
        RunConfig::Seq2seq(c) => seqcalc::task::generate(&c.task, SAMPLES, 2024)
            .map_err(|e| ApiError::bad(e.to_string()))?
            .into_iter()
            .map(|p| (p.question, p.answer))
            .collect(),
        RunConfig::CoupledTransformer(c) => long_additions(c.lengthgen.train.max_digits),
        RunConfig::PairGru(c) => long_additions(c.pair_gru.max_digits),
        RunConfig::Regression(_) => return Ok(Json(Vec::new())),
    };
    with_run(&app, dir, move |run| {
        let questions: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        let answers = run.answer(&questions);
        Ok(Json(
            problems
                .iter()
                .zip(answers)
                .filter_map(|((question, target), a)| {
                    let a = a.ok()?;
                    Some(super::trainer::LiveSample {
                        question: question.clone(),
                        target: target.clone(),
                        correct: a.output == *target,
                        prediction: a.output,
                    })
                })
                .collect(),
        ))
    })
    .await
}

/// Seeded additions of operands `max_digits` long, then 2x and 5x as long (at most 1,000
/// digits): questions and right answers.
fn long_additions(max_digits: usize) -> Vec<(String, String)> {
    use rand::SeedableRng;
    use seqcalc::task::long_addition::{random_questions, to_decimal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let lens = [1, 2, 5].map(|k| max_digits.saturating_mul(k).clamp(1, 1000));
    let per = [4, 3, 3];
    lens.iter()
        .zip(per)
        .flat_map(|(&len, n)| random_questions(&mut rng, len, n))
        .map(|q| (q.question(), to_decimal(&q.sum())))
        .collect()
}
