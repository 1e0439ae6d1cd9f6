//! The experiment configuration: one serde value describing task, codec, data, model, optimiser
//! and training. Every field has a default (the Keras 3-digit addition experiment); flags and
//! `--config file.toml` override it; every run saves it as `config.json` so `predict` and `eval`
//! rebuild the exact codec and model from the run directory alone.
//!
//! [`long_addition`]: the configs of the runs that answer long additions (the coupled-position
//! transformer and the aligned-pairs GRU).

pub mod long_addition;

use crate::codec::{Codec, CodecConfig};
use crate::data::DataConfig;
use crate::model::{ModelConfig, Seq2Seq};
use crate::optim::OptimConfig;
use crate::task::TaskConfig;
use serde::{Deserialize, Serialize};

/// The config file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Training-loop settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Upper bound on epochs.
    pub epochs: usize,
    pub batch_size: usize,
    /// Early stopping on validation loss: epochs without an improvement of at least `min_delta`
    /// (Keras `EarlyStopping(patience=3, min_delta=0.001)`); 0 disables it.
    pub patience: usize,
    pub min_delta: f64,
    /// Also stop once validation exact match reaches this.
    pub stop_at_exact: Option<f64>,
    /// Validation questions shown after each epoch.
    pub samples: usize,
    /// Worker threads (0: one per core). Results are bit-identical for a given thread count.
    pub threads: usize,
    /// Keras `ReduceLROnPlateau` on validation loss: multiply the learning rate by
    /// `reduce_lr_factor` after this many epochs without improvement (0: off).
    pub reduce_lr_patience: usize,
    pub reduce_lr_factor: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 128,
            patience: 5,
            min_delta: 0.001,
            stop_at_exact: None,
            samples: 10,
            threads: 0,
            reduce_lr_patience: 0,
            reduce_lr_factor: 0.5,
        }
    }
}

/// Everything that defines an experiment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    pub format_version: u32,
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub task: TaskConfig,
    pub codec: CodecConfig,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub train: TrainConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            format_version: FORMAT_VERSION,
            name: "keras-addition".into(),
            description: "Keras addition_rnn: 3-digit addition, LSTM(128) -> RepeatVector(4) -> LSTM(128) -> Dense softmax".into(),
            seed: 1337,
            task: TaskConfig::default(),
            codec: CodecConfig::default(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            train: TrainConfig::default(),
        }
    }
}

/// Upper bounds on the numbers a user gives (flags and config fields of every run kind), and the
/// checks that name the value and the bound in one line. Every number that sizes an allocation,
/// bounds a loop or starts threads goes through one of these before it is used.
pub mod limits {
    /// Worker threads of one run (and runs of a sweep at once).
    pub const THREADS: usize = 256;
    /// Questions in one batch.
    pub const BATCH: usize = 1 << 20;
    /// Epochs of one run (and the patience counters, which count epochs).
    pub const EPOCHS: usize = 1_000_000;
    /// Optimizer steps of one run.
    pub const STEPS: usize = 1_000_000_000;
    /// Questions generated for one run or one evaluation.
    pub const QUESTIONS: usize = 1 << 30;
    /// Width of a recurrent layer, a transformer or its feed-forward layer.
    pub const WIDTH: usize = 16_384;
    /// Stacked layers.
    pub const LAYERS: usize = 64;
    /// Attention heads.
    pub const HEADS: usize = 256;
    /// Sample questions shown per epoch.
    pub const SAMPLES: usize = 10_000;
    /// Seeds of a sweep and runs of one grid.
    pub const RUNS: usize = 100_000;
    /// A time budget in seconds (about 116 days).
    pub const SECONDS: f64 = 1e7;
    /// Bytes of one input file (a config read from a path, a pipe or standard input).
    pub const INPUT_BYTES: u64 = 16 << 20;

    /// `value` must be at most `max`.
    pub fn at_most(what: &str, value: usize, max: usize) -> Result<(), String> {
        if value > max {
            return Err(format!("{what} {value} is above the limit of {max}"));
        }
        Ok(())
    }

    /// `value` must be in `min..=max`.
    pub fn within(what: &str, value: usize, min: usize, max: usize) -> Result<(), String> {
        if !(min..=max).contains(&value) {
            return Err(format!("{what} {value} must be in {min}..={max}"));
        }
        Ok(())
    }

    /// `value` must be a finite number in `min..=max`.
    pub fn finite_within(what: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
        if !(value.is_finite() && (min..=max).contains(&value)) {
            return Err(format!(
                "{what} {value} must be a finite number in [{min}, {max}]"
            ));
        }
        Ok(())
    }

    /// `a * b` as a checked product: `None` when it does not fit in a `usize`.
    pub fn product(factors: &[usize]) -> Option<usize> {
        factors
            .iter()
            .try_fold(1usize, |acc, &f| acc.checked_mul(f))
    }
}

/// A configuration that cannot run, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ExperimentConfig {
    /// Parses TOML or JSON (chosen by the first non-blank character).
    pub fn parse(text: &str) -> Result<ExperimentConfig, ConfigError> {
        if text.trim_start().starts_with('{') {
            Self::parse_json(text)
        } else {
            Self::parse_toml(text)
        }
    }

    /// Parses a JSON config (a run directory's `config.json`). Errors are one line.
    pub fn parse_json(text: &str) -> Result<ExperimentConfig, ConfigError> {
        // The version first: a newer file may have fields this build does not know.
        let loose: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("not valid JSON: {e}")))?;
        check_version(loose.get("format_version").and_then(|v| v.as_u64()))?;
        let cfg: ExperimentConfig = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("invalid JSON config: {e}")))?;
        check_version(Some(cfg.format_version.into()))?;
        Ok(cfg)
    }

    /// Parses a TOML config. Errors are one line (line, column and what is wrong).
    pub fn parse_toml(text: &str) -> Result<ExperimentConfig, ConfigError> {
        let loose: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(toml_error(text, &e)))?;
        check_version(
            loose
                .get("format_version")
                .and_then(|v| v.as_integer())
                .map(|v| v.max(0) as u64),
        )?;
        let cfg: ExperimentConfig =
            toml::from_str(text).map_err(|e| ConfigError(toml_error(text, &e)))?;
        check_version(Some(cfg.format_version.into()))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Resolves derived fields (the codec's alphabet and widths) and checks that the whole
    /// configuration can run; returns the codec and model it describes.
    pub fn build(&mut self) -> Result<(Codec, Seq2Seq), ConfigError> {
        self.task
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        self.check_numbers().map_err(ConfigError)?;
        // A teacher-forced decoder needs an end symbol; so does masking, which scores answers
        // up to it, and a scratchpad, whose work has no fixed width.
        if (self.model.decoder == crate::model::DecoderKind::TeacherForced
            || self.model.mask
            || self.codec.scratchpad)
            && self.codec.eos.is_none()
        {
            self.codec.eos = Some('$');
        }
        self.codec = self.codec.resolve(&self.task);
        let codec = Codec::new(&self.codec, &self.task).map_err(|e| ConfigError(e.to_string()))?;
        let ql = self.task.max_question_len();
        let (al, written) = if self.codec.scratchpad {
            (self.task.max_worked_len(), "worked answer")
        } else {
            (self.task.max_answer_len(), "answer")
        };
        if codec.input_len() < ql {
            return Err(ConfigError(format!(
                "codec input_len {} is shorter than the task's longest question ({ql})",
                codec.input_len()
            )));
        }
        let al = codec.output_steps(al);
        if codec.output_len() < al {
            return Err(ConfigError(format!(
                "codec output_len {} is shorter than the task's longest {written} ({al}, with the end symbol if there is one)",
                codec.output_len()
            )));
        }
        let mut model = Seq2Seq::new(
            &self.model,
            codec.vocab_size(),
            codec.input_len(),
            codec.output_len(),
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        model.eos = codec.eos_index();
        model.pad = codec.pad_index();
        self.optim.validate().map_err(ConfigError)?;
        let t = &self.train;
        if t.batch_size == 0 {
            return Err(ConfigError("batch_size must be at least 1".into()));
        }
        if t.epochs == 0 {
            return Err(ConfigError("epochs must be at least 1".into()));
        }
        if let Some(x) = t.stop_at_exact {
            if !(0.0..=1.0).contains(&x) {
                return Err(ConfigError(format!("stop_at_exact {x} must be in [0, 1]")));
            }
        }
        if !(self.train.reduce_lr_factor > 0.0 && self.train.reduce_lr_factor <= 1.0) {
            return Err(ConfigError(
                "train.reduce_lr_factor must be in (0, 1]".into(),
            ));
        }
        if self.data.size < 2 {
            return Err(ConfigError(
                "data.size must be at least 2 (train and validation)".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return Err(ConfigError("data.val_fraction must be in [0, 1)".into()));
        }
        let distinct = self.task.distinct_questions();
        if self.task.unique && (self.data.size as u128) > distinct {
            return Err(ConfigError(format!(
                "data.size {} exceeds the {distinct} distinct questions this task has",
                self.data.size
            )));
        }
        let need = self.memory_bound(&model, codec.input_len() + codec.output_len())?;
        let have = machine_memory_bytes();
        if let Some(have) = have {
            if need > have / 10 * 8 {
                return Err(ConfigError(format!(
                    "this configuration needs about {:.1} GiB of memory for activations and data; the machine has {:.1} GiB",
                    need as f64 / (1u64 << 30) as f64,
                    have as f64 / (1u64 << 30) as f64
                )));
            }
        }
        Ok((codec, model))
    }

    /// Bounds on every number of the config that sizes memory, a loop or a thread count (the
    /// finer checks of each part follow in [`Self::build`]).
    fn check_numbers(&self) -> Result<(), String> {
        use limits::*;
        let (m, t) = (&self.model, &self.train);
        within("model.hidden", m.hidden, 1, WIDTH)?;
        if let Some(e) = m.encoder_hidden {
            within("model.encoder_hidden", e, 1, WIDTH)?;
        }
        within("model.layers", m.layers, 1, LAYERS)?;
        at_most("model.heads", m.heads, HEADS)?;
        if let Some(f) = m.ffn {
            within("model.ffn", f, 1, WIDTH)?;
        }
        at_most("model.embed_dim", m.embed_dim, WIDTH)?;
        within("train.batch_size", t.batch_size, 1, BATCH)?;
        within("train.epochs", t.epochs, 1, EPOCHS)?;
        at_most("train.patience", t.patience, EPOCHS)?;
        at_most("train.reduce_lr_patience", t.reduce_lr_patience, EPOCHS)?;
        at_most("train.samples", t.samples, SAMPLES)?;
        at_most("train.threads", t.threads, THREADS)?;
        finite_within("train.min_delta", t.min_delta, 0.0, f64::MAX)?;
        within("data.size", self.data.size, 2, QUESTIONS)?;
        Ok(())
    }

    /// Bytes the run needs (activations, parameters, optimizer state and data), computed with
    /// checked arithmetic: a configuration whose estimate does not fit in 64 bits is refused
    /// before the model's own estimate could wrap around.
    fn memory_bound(&self, model: &Seq2Seq, seq_len: usize) -> Result<u64, ConfigError> {
        // A generous bound on every term of `Seq2Seq::memory_estimate_bytes` (widths, steps and
        // layers are bounded above, so each factor is small; only their product can be large).
        let m = &self.model;
        let width = [
            m.hidden,
            m.encoder_hidden.unwrap_or(0),
            m.embed_dim,
            m.ffn.unwrap_or(4 * m.hidden),
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        let steps = seq_len + 2;
        let per_row =
            limits::product(&[m.layers + 2, steps, 48 * width + 2 * (m.heads + 1) * steps])
                .and_then(|x| x.checked_add(limits::product(&[steps, model.vocab])?));
        let threads = self.threads();
        let bound = per_row
            .and_then(|r| limits::product(&[r, self.train.batch_size + threads]))
            .and_then(|a| a.checked_add(limits::product(&[model.param_count(), threads + 4])?))
            .and_then(|a| a.checked_mul(4))
            .and_then(|a| a.checked_add(limits::product(&[self.data.size, seq_len, 3])?));
        match bound {
            Some(b) if b < 1 << 60 => {
                let data = self.data.size * seq_len * 3;
                Ok((model.memory_estimate_bytes(self.train.batch_size, threads) + data) as u64)
            }
            _ => Err(ConfigError(format!(
                "this configuration needs more than {} GiB of memory (batch_size {}, data.size {}, model.hidden {}, model.layers {}); make them smaller",
                1u64 << 30,
                self.train.batch_size,
                self.data.size,
                m.hidden,
                m.layers
            ))),
        }
    }

    /// Worker threads to use (0 in the config means one per core).
    pub fn threads(&self) -> usize {
        crate::parallel::threads_or_cores(self.train.threads)
    }
}

/// Refuses a config written by a newer seqcalc.
fn check_version(v: Option<u64>) -> Result<(), ConfigError> {
    match v {
        Some(v) if v > FORMAT_VERSION as u64 => Err(ConfigError(format!(
            "config format version {v} is newer than this seqcalc understands ({FORMAT_VERSION}); upgrade seqcalc"
        ))),
        _ => Ok(()),
    }
}

/// A TOML error in one line: the toml crate's own message draws the line with a caret.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let place = e
        .span()
        .and_then(|sp| text.get(..sp.start))
        .map(|before| {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    format!("invalid TOML config{place}: {msg}")
}

/// Reads a user-given file exactly once, as text: a regular file, a pipe, a FIFO, process
/// substitution or `/dev/stdin` alike (a second open of a pipe would read nothing). At most
/// [`limits::INPUT_BYTES`] bytes are accepted; errors name the path.
pub fn read_input(path: &std::path::Path) -> Result<String, ConfigError> {
    crate::fsutil::read_bounded(path, limits::INPUT_BYTES)
        .map_err(|e| ConfigError(format!("{}: cannot read it: {e}", path.display())))
}

/// Total memory from /proc/meminfo, if readable.
pub fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_and_a_newer_version_is_named_before_its_new_fields() {
        let e = ExperimentConfig::parse("seed = 1\n[task\ndigits = 2\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n') && e.contains("line 2, column 6"), "{e}");
        let e = ExperimentConfig::parse("[task]\ndigits = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n') && e.contains("line 2"), "{e}");
        for newer in [
            "format_version = 2\nfield_of_the_future = 1\n",
            "{\"format_version\": 2, \"field_of_the_future\": 1}",
        ] {
            let e = ExperimentConfig::parse(newer).unwrap_err().to_string();
            assert!(e.contains("format version 2 is newer"), "{e}");
        }
        // config.json is JSON: TOML there is an error, not a second chance.
        let toml = ExperimentConfig::default().to_toml();
        assert!(ExperimentConfig::parse(&toml).is_ok());
        let e = ExperimentConfig::parse_json(&toml).unwrap_err().to_string();
        assert!(e.starts_with("not valid JSON"), "{e}");
        let json = ExperimentConfig::default().to_json();
        assert_eq!(
            ExperimentConfig::parse_json(&json).unwrap(),
            ExperimentConfig::default()
        );
    }
}
