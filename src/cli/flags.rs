//! The flags that change a run's configuration, shared by `train`, `experiment run`, `sweep`,
//! `data` and `bench`. Each run kind takes the flags that mean something to it; any other flag
//! given is refused with the list of those it takes, never silently dropped.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use seqcalc::config::ExperimentConfig;
use seqcalc::model::{DecoderKind, InputKind, ModelKind};
use seqcalc::run::{RunConfig, RunKind};
use seqcalc::task::TaskKind;

#[derive(Args, Default, Clone, Debug)]
pub struct RunFlags {
    /// Longest operand in digits.
    #[arg(long, help_heading = "Task")]
    pub digits: Option<usize>,
    /// Shortest operand in digits (default 1); above 1 every operand has at least this many.
    #[arg(long, help_heading = "Task")]
    pub min_digits: Option<usize>,
    /// Arithmetic: the fraction of questions drawn uniformly over every ordered operand pair
    /// instead of Keras's way (a length first, so short operands are common); 0 is Keras's.
    #[arg(long, help_heading = "Task")]
    pub uniform_fraction: Option<f64>,
    /// Operator of the arithmetic task.
    #[arg(long, help_heading = "Task", value_parser = ["+", "-"])]
    pub op: Option<String>,
    /// Task kind.
    #[arg(long, help_heading = "Task", value_parser = ["arithmetic", "pq-system", "expression"])]
    pub task: Option<String>,
    /// Expression: operands per question, N or a range N..M (inclusive: 2..4 mixes 2, 3 and 4).
    #[arg(long, help_heading = "Task", value_parser = parse_terms, value_name = "N|N..M")]
    pub terms: Option<(usize, usize)>,
    /// Expression: the operators to draw from, a subset of "+-*".
    #[arg(long, help_heading = "Task")]
    pub ops: Option<String>,
    /// Expression: the deepest bracket nesting (0: no brackets).
    #[arg(long, help_heading = "Task")]
    pub brackets: Option<usize>,
    /// pq-system: a and b go up to this many dashes.
    #[arg(long, help_heading = "Task")]
    pub pq_max: Option<usize>,
    /// Questions generated (training + validation); regression runs: examples per epoch.
    #[arg(long, help_heading = "Task")]
    pub size: Option<usize>,
    /// Question width the model reads (default: the task's longest question); set it wider to
    /// evaluate later on longer operands or more terms than training draws.
    #[arg(long, help_heading = "Encoding")]
    pub input_len: Option<usize>,
    /// Answer width the model writes (default: the task's longest answer).
    #[arg(long, help_heading = "Encoding")]
    pub output_len: Option<usize>,
    /// Do not reverse the question (Keras reverses by default).
    #[arg(long, help_heading = "Encoding")]
    pub no_reverse: bool,
    /// Write answers least significant digit first (the model's side only: answers print as usual).
    #[arg(long, help_heading = "Encoding")]
    pub reverse_output: bool,
    /// Expressions: the model writes its work (each operation's result, partial products for
    /// long multiplications) before the answer; answers print as usual.
    #[arg(long, help_heading = "Encoding")]
    pub scratchpad: bool,
    /// Seq2seq architecture: the RNN encoder-decoder, or a decoder-only transformer (--hidden is
    /// its width, --layers its blocks).
    #[arg(long, alias = "kind", help_heading = "Model", value_parser = ["repeat-seq2seq", "transformer"])]
    pub arch: Option<String>,
    /// Recurrent cell.
    #[arg(long, help_heading = "Model", value_parser = ["lstm", "gru", "simplernn"])]
    pub cell: Option<String>,
    /// Hidden units of every recurrent layer; a transformer's width.
    #[arg(long, help_heading = "Model")]
    pub hidden: Option<usize>,
    /// Decoder layers; a transformer's blocks.
    #[arg(long, help_heading = "Model")]
    pub layers: Option<usize>,
    /// Decoder: repeat (Keras RepeatVector) or teacher-forced (feeds back the previous symbol,
    /// starts from the encoder's state, answers end with '$').
    #[arg(long, help_heading = "Model", value_parser = ["repeat", "teacher-forced"])]
    pub decoder: Option<String>,
    /// Luong attention over the encoder's outputs.
    #[arg(long, help_heading = "Model")]
    pub attention: bool,
    /// How questions enter the encoder.
    #[arg(long, help_heading = "Model", value_parser = ["one-hot", "embedding"])]
    pub input: Option<String>,
    /// Embedding width (--input embedding; pair-gru runs).
    #[arg(long, help_heading = "Model")]
    pub embed_dim: Option<usize>,
    /// Transformer: attention heads (must divide --hidden).
    #[arg(long, help_heading = "Model")]
    pub heads: Option<usize>,
    /// Transformer: feed-forward width (default 4 x --hidden).
    #[arg(long, help_heading = "Model")]
    pub ffn: Option<usize>,
    /// Leave padding out: the encoder skips pad steps and the loss stops at the answer's end
    /// symbol ('$', turned on by this).
    #[arg(long, help_heading = "Model")]
    pub mask: bool,
    /// Coupled transformer: each query sees only keys within this coupled-position distance
    /// (0: every earlier key).
    #[arg(long, help_heading = "Model")]
    pub local_window: Option<usize>,
    /// Random seed (data, initialisation, shuffling).
    #[arg(long, help_heading = "Training")]
    pub seed: Option<u64>,
    /// Upper bound on epochs (seq2seq default 100; on --resume it extends the run).
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<usize>,
    /// Optimiser steps (coupled-transformer and pair-gru runs; the schedule spans them).
    #[arg(long, help_heading = "Training")]
    pub steps: Option<usize>,
    /// Examples per optimiser step (seq2seq default 128).
    #[arg(long, help_heading = "Training")]
    pub batch_size: Option<usize>,
    /// Learning rate (seq2seq default 0.001, Keras's Adam).
    #[arg(long, help_heading = "Training")]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant (Keras) or warmup-cosine (over --epochs).
    #[arg(long, help_heading = "Training", value_parser = ["constant", "warmup-cosine"])]
    pub schedule: Option<String>,
    /// Early-stopping patience in epochs (0 disables early stopping; default 5).
    #[arg(long, help_heading = "Training")]
    pub patience: Option<usize>,
    /// Stop once validation exact match reaches this (e.g. 0.99).
    #[arg(long, help_heading = "Training")]
    pub stop_at_exact: Option<f64>,
    /// Worker threads (default 0: one per core); results are bit-identical for a given count.
    #[arg(long, help_heading = "Training")]
    pub threads: Option<usize>,
    /// Validation questions shown after each epoch (default 10).
    #[arg(long, help_heading = "Training")]
    pub samples: Option<usize>,
    /// Coupled transformer: stop training after this many seconds (with --steps 0 the schedule
    /// spans this time instead).
    #[arg(long, help_heading = "Training")]
    pub train_seconds: Option<f64>,
    /// Coupled transformer: fraction of batches whose operands are zero-padded further, to a
    /// length uniform up to --pad-to.
    #[arg(long, help_heading = "Training")]
    pub pad_fraction: Option<f64>,
    /// Coupled transformer: the longest padded operand length of those batches.
    #[arg(long, help_heading = "Training")]
    pub pad_to: Option<usize>,
    /// Pair GRU: fraction of training questions rewritten as carry-stress questions.
    #[arg(long, help_heading = "Training")]
    pub stress_fraction: Option<f64>,
}

/// The seq2seq task's flags: what shapes its questions (`data` takes these and --seed).
pub const TASK_FLAGS: &[&str] = &[
    "digits",
    "min-digits",
    "uniform-fraction",
    "op",
    "task",
    "terms",
    "ops",
    "brackets",
    "pq-max",
];

/// The seq2seq flags: the task's, then the data, encoding, model and training flags.
static SEQ2SEQ_FLAGS: std::sync::LazyLock<Vec<&str>> = std::sync::LazyLock::new(|| {
    [
        TASK_FLAGS,
        &[
            "size",
            "input-len",
            "output-len",
            "no-reverse",
            "reverse-output",
            "scratchpad",
            "arch",
            "cell",
            "hidden",
            "layers",
            "decoder",
            "attention",
            "input",
            "embed-dim",
            "heads",
            "ffn",
            "mask",
            "seed",
            "epochs",
            "batch-size",
            "lr",
            "schedule",
            "patience",
            "stop-at-exact",
            "threads",
            "samples",
        ],
    ]
    .concat()
});

/// The flags each run kind takes.
pub fn accepted(kind: RunKind) -> &'static [&'static str] {
    match kind {
        RunKind::Seq2seq => &SEQ2SEQ_FLAGS,
        RunKind::CoupledTransformer => &[
            "digits",
            "min-digits",
            "hidden",
            "layers",
            "heads",
            "ffn",
            "local-window",
            "seed",
            "steps",
            "batch-size",
            "lr",
            "threads",
            "train-seconds",
            "pad-fraction",
            "pad-to",
        ],
        RunKind::PairGru => &[
            "digits",
            "min-digits",
            "hidden",
            "embed-dim",
            "seed",
            "steps",
            "batch-size",
            "lr",
            "threads",
            "stress-fraction",
        ],
        RunKind::Regression => &["size", "seed", "epochs", "batch-size"],
    }
}

impl RunFlags {
    /// The flags given on the command line, by name.
    pub fn given(&self) -> Vec<&'static str> {
        let set = [
            ("digits", self.digits.is_some()),
            ("min-digits", self.min_digits.is_some()),
            ("uniform-fraction", self.uniform_fraction.is_some()),
            ("op", self.op.is_some()),
            ("task", self.task.is_some()),
            ("terms", self.terms.is_some()),
            ("ops", self.ops.is_some()),
            ("brackets", self.brackets.is_some()),
            ("pq-max", self.pq_max.is_some()),
            ("size", self.size.is_some()),
            ("input-len", self.input_len.is_some()),
            ("output-len", self.output_len.is_some()),
            ("no-reverse", self.no_reverse),
            ("reverse-output", self.reverse_output),
            ("scratchpad", self.scratchpad),
            ("arch", self.arch.is_some()),
            ("cell", self.cell.is_some()),
            ("hidden", self.hidden.is_some()),
            ("layers", self.layers.is_some()),
            ("decoder", self.decoder.is_some()),
            ("attention", self.attention),
            ("input", self.input.is_some()),
            ("embed-dim", self.embed_dim.is_some()),
            ("heads", self.heads.is_some()),
            ("ffn", self.ffn.is_some()),
            ("mask", self.mask),
            ("local-window", self.local_window.is_some()),
            ("seed", self.seed.is_some()),
            ("epochs", self.epochs.is_some()),
            ("steps", self.steps.is_some()),
            ("batch-size", self.batch_size.is_some()),
            ("lr", self.lr.is_some()),
            ("schedule", self.schedule.is_some()),
            ("patience", self.patience.is_some()),
            ("stop-at-exact", self.stop_at_exact.is_some()),
            ("threads", self.threads.is_some()),
            ("samples", self.samples.is_some()),
            ("train-seconds", self.train_seconds.is_some()),
            ("pad-fraction", self.pad_fraction.is_some()),
            ("pad-to", self.pad_to.is_some()),
            ("stress-fraction", self.stress_fraction.is_some()),
        ];
        set.into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }

    /// Refuses every given flag outside `allowed`, naming them and what `what` takes instead.
    pub fn refuse_others(&self, allowed: &[&str], what: &str) -> Result<()> {
        let refused: Vec<String> = self
            .given()
            .into_iter()
            .filter(|f| !allowed.contains(f))
            .map(|f| format!("--{f}"))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let takes: Vec<String> = allowed.iter().map(|f| format!("--{f}")).collect();
        bail!(
            "{} {} not apply to {what} (it takes {})",
            refused.join(", "),
            if refused.len() == 1 { "does" } else { "do" },
            if takes.is_empty() {
                "none of these flags".to_string()
            } else {
                takes.join(", ")
            }
        )
    }

    /// Applies the flags to a run config of any kind; a flag its kind does not take is refused.
    pub fn apply(&self, cfg: &mut RunConfig) -> Result<()> {
        let kind = cfg.kind();
        self.refuse_others(accepted(kind), &format!("{kind} runs"))?;
        match cfg {
            RunConfig::Seq2seq(c) => self.apply_seq2seq(c)?,
            RunConfig::CoupledTransformer(c) => {
                let (t, m) = (&mut c.lengthgen.train, &mut c.lengthgen.model);
                set(&mut t.max_digits, self.digits);
                set(&mut t.min_digits, self.min_digits);
                set(&mut m.dim, self.hidden);
                set(&mut m.layers, self.layers);
                set(&mut m.heads, self.heads);
                set(&mut m.ffn, self.ffn);
                set(&mut m.local_window, self.local_window);
                set(&mut t.steps, self.steps);
                set(&mut t.batch_size, self.batch_size);
                set(&mut t.lr, self.lr);
                set(&mut t.threads, self.threads);
                if self.train_seconds.is_some() {
                    t.max_seconds = self.train_seconds;
                }
                set(&mut t.pad_fraction, self.pad_fraction);
                set(&mut t.pad_to_digits, self.pad_to);
            }
            RunConfig::PairGru(c) => {
                let g = &mut c.pair_gru;
                set(&mut g.max_digits, self.digits);
                set(&mut g.min_digits, self.min_digits);
                set(&mut g.hidden, self.hidden);
                set(&mut g.embed_dim, self.embed_dim);
                set(&mut g.steps, self.steps);
                set(&mut g.batch_size, self.batch_size);
                set(&mut g.lr, self.lr);
                set(&mut g.threads, self.threads);
                set(&mut g.stress_fraction, self.stress_fraction);
            }
            RunConfig::Regression(c) => {
                let m = &mut c.mapping;
                set(&mut m.examples_per_epoch, self.size);
                set(&mut m.epochs, self.epochs);
                set(&mut m.batch_size, self.batch_size);
            }
        }
        if let Some(s) = self.seed {
            cfg.set_seed(s);
        }
        Ok(())
    }

    /// On `--resume` only `--epochs` applies (it extends a seq2seq run); any flag that would
    /// change the run is refused.
    pub fn apply_on_resume(&self, cfg: &mut RunConfig) -> Result<()> {
        match cfg {
            RunConfig::Seq2seq(c) => {
                self.refuse_others(&["epochs"], "a resumed run (only --epochs extends it)")?;
                set(&mut c.train.epochs, self.epochs);
            }
            _ => self.refuse_others(&[], &format!("a resumed {} run", cfg.kind()))?,
        }
        Ok(())
    }

    /// Applies the task, encoding, model and training flags to a seq2seq config.
    pub fn apply_seq2seq(&self, cfg: &mut ExperimentConfig) -> Result<()> {
        if let Some(t) = &self.task {
            cfg.task.kind = match t.as_str() {
                "arithmetic" => TaskKind::Arithmetic,
                "pq-system" => TaskKind::PqSystem,
                _ => TaskKind::Expression,
            };
        }
        set(&mut cfg.task.digits, self.digits);
        set(&mut cfg.task.min_digits, self.min_digits);
        set(&mut cfg.task.uniform_fraction, self.uniform_fraction);
        let expression_flags =
            self.terms.is_some() || self.ops.is_some() || self.brackets.is_some();
        if expression_flags && cfg.task.kind != TaskKind::Expression {
            bail!(
                "--terms, --ops and --brackets are for the expression task: add --task expression"
            );
        }
        if self.op.is_some() && cfg.task.kind == TaskKind::Expression {
            bail!("--op is for the arithmetic task; the expression task takes --ops (e.g. --ops '+-*')");
        }
        if let Some((lo, hi)) = self.terms {
            (cfg.task.terms_min, cfg.task.terms_max) = (lo, hi);
        }
        if let Some(ops) = &self.ops {
            cfg.task.ops = ops.clone();
        }
        set(&mut cfg.task.brackets, self.brackets);
        if self.input_len.is_some() {
            cfg.codec.input_len = self.input_len;
        }
        if self.output_len.is_some() {
            cfg.codec.output_len = self.output_len;
        }
        if let Some(op) = &self.op {
            cfg.task.op = op.clone();
        }
        set(&mut cfg.data.size, self.size);
        if let Some(c) = &self.cell {
            cfg.model.cell = c.parse().map_err(|e: String| anyhow!(e))?;
        }
        set(&mut cfg.model.hidden, self.hidden);
        set(&mut cfg.model.layers, self.layers);
        set(&mut cfg.task.pq_max, self.pq_max);
        if let Some(k) = &self.arch {
            cfg.model.kind = match k.as_str() {
                "transformer" => ModelKind::Transformer,
                _ => ModelKind::RepeatSeq2seq,
            };
        }
        set(&mut cfg.model.heads, self.heads);
        if self.ffn.is_some() {
            cfg.model.ffn = self.ffn;
        }
        if let Some(d) = &self.decoder {
            cfg.model.decoder = match d.as_str() {
                "teacher-forced" => DecoderKind::TeacherForced,
                _ => DecoderKind::Repeat,
            };
        }
        cfg.model.attention |= self.attention;
        if let Some(i) = &self.input {
            cfg.model.input = match i.as_str() {
                "embedding" => InputKind::Embedding,
                _ => InputKind::OneHot,
            };
        }
        set(&mut cfg.model.embed_dim, self.embed_dim);
        cfg.codec.reverse_output |= self.reverse_output;
        cfg.codec.scratchpad |= self.scratchpad;
        cfg.model.mask |= self.mask;
        set(&mut cfg.train.epochs, self.epochs);
        set(&mut cfg.train.batch_size, self.batch_size);
        set(&mut cfg.optim.lr, self.lr);
        match self.schedule.as_deref() {
            Some("warmup-cosine") => cfg.optim.schedule = seqcalc::optim::Schedule::WarmupCosine,
            Some(_) => cfg.optim.schedule = seqcalc::optim::Schedule::Constant,
            None => {}
        }
        set(&mut cfg.train.threads, self.threads);
        set(&mut cfg.train.samples, self.samples);
        set(&mut cfg.train.patience, self.patience);
        if self.stop_at_exact.is_some() {
            cfg.train.stop_at_exact = self.stop_at_exact;
        }
        if self.no_reverse {
            cfg.codec.reverse_input = false;
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        Ok(())
    }
}

fn set<T: Copy>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// `--terms`: "3" or an inclusive range "2..4" (also written "2..=4").
pub fn parse_terms(s: &str) -> Result<(usize, usize), String> {
    let number = |t: &str| {
        t.trim().parse::<usize>().map_err(|_| {
            format!("{s:?} is not a number of terms: expected N or N..M, like 3 or 2..4")
        })
    };
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?),
        None => {
            let n = number(s)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!(
            "the range {s:?} is empty: write the smaller count first"
        ));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use seqcalc::experiment;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        flags: RunFlags,
    }

    /// Every flag with a value that differs from every default.
    const SAMPLES: &[(&str, Option<&str>)] = &[
        ("digits", Some("4")),
        ("min-digits", Some("2")),
        ("uniform-fraction", Some("0.5")),
        ("op", Some("-")),
        ("task", Some("pq-system")),
        ("terms", Some("3")),
        ("ops", Some("+-")),
        ("brackets", Some("1")),
        ("pq-max", Some("7")),
        ("size", Some("333")),
        ("input-len", Some("9")),
        ("output-len", Some("6")),
        ("no-reverse", None),
        ("reverse-output", None),
        ("scratchpad", None),
        ("arch", Some("transformer")),
        ("cell", Some("gru")),
        ("hidden", Some("24")),
        ("layers", Some("3")),
        ("decoder", Some("teacher-forced")),
        ("attention", None),
        ("input", Some("embedding")),
        ("embed-dim", Some("5")),
        ("heads", Some("3")),
        ("ffn", Some("40")),
        ("mask", None),
        ("local-window", Some("5")),
        ("seed", Some("99")),
        ("epochs", Some("7")),
        ("steps", Some("77")),
        ("batch-size", Some("17")),
        ("lr", Some("0.0123")),
        ("schedule", Some("warmup-cosine")),
        ("patience", Some("11")),
        ("stop-at-exact", Some("0.5")),
        ("threads", Some("3")),
        ("samples", Some("4")),
        ("train-seconds", Some("12.5")),
        ("pad-fraction", Some("0.25")),
        ("pad-to", Some("30")),
        ("stress-fraction", Some("0.125")),
    ];

    fn flags(flag: &str, value: Option<&str>) -> RunFlags {
        let mut args = vec!["t".to_string(), format!("--{flag}")];
        args.extend(value.map(str::to_string));
        Cmd::try_parse_from(&args)
            .unwrap_or_else(|e| panic!("--{flag}: {e}"))
            .flags
    }

    fn one_of_each_kind() -> Vec<RunConfig> {
        [
            "keras-addition",
            "length-generalisation",
            "length-generalisation-gru",
            "brownlee-mlp",
        ]
        .iter()
        .map(|n| experiment::find(n).unwrap().run_config(false))
        .collect()
    }

    #[test]
    fn the_samples_cover_every_flag() {
        let names: Vec<&str> = SAMPLES.iter().map(|(n, _)| *n).collect();
        for kind in RunKind::ALL {
            for f in accepted(kind) {
                assert!(names.contains(f), "{f} has no sample");
            }
        }
        for (flag, value) in SAMPLES {
            assert_eq!(flags(flag, *value).given(), vec![*flag]);
        }
    }

    #[test]
    fn every_flag_is_applied_or_refused_with_its_name_for_every_run_kind() {
        for base in one_of_each_kind() {
            let kind = base.kind();
            for (flag, value) in SAMPLES {
                let mut cfg = base.clone();
                match flags(flag, *value).apply(&mut cfg) {
                    Ok(()) => {
                        assert!(
                            accepted(kind).contains(flag),
                            "--{flag} applied to a {kind} run that does not take it"
                        );
                        assert_ne!(
                            cfg.to_toml(),
                            base.to_toml(),
                            "--{flag} on a {kind} run changed nothing"
                        );
                    }
                    Err(e) => {
                        let e = e.to_string();
                        assert!(
                            e.contains(&format!("--{flag}")) && !e.contains('\n'),
                            "--{flag} on a {kind} run: {e}"
                        );
                        assert_eq!(cfg, base, "a refused flag leaves the config alone");
                        if !accepted(kind).contains(flag) {
                            assert!(e.contains("does not apply"), "{e}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn on_resume_only_epochs_extends_a_seq2seq_run_and_everything_else_is_refused() {
        for base in one_of_each_kind() {
            for (flag, value) in SAMPLES {
                let mut cfg = base.clone();
                let r = flags(flag, *value).apply_on_resume(&mut cfg);
                if base.kind() == RunKind::Seq2seq && *flag == "epochs" {
                    r.unwrap();
                    let RunConfig::Seq2seq(c) = &cfg else {
                        unreachable!()
                    };
                    assert_eq!(c.train.epochs, 7);
                } else {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(&format!("--{flag}")), "{e}");
                    assert_eq!(cfg, base);
                }
            }
        }
    }
}
