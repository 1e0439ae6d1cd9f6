//! `seqcalc experiment run compare-decoders`: which decoder, input encoding and question order
//! win on 3-, 5- and 10-digit addition and on 3-term expressions, measured the same way for all:
//! exact match on fresh questions, by answer length, on operands longer than any seen in
//! training, and epochs and seconds to 0.99. The runs go through the sweep machinery (both cores
//! busy, resumable); the report is markdown with pictures next to it.

use crate::config::ExperimentConfig;
use crate::eval;
use crate::history::History;
use crate::model::{DecoderKind, InputKind};
use crate::report;
use crate::rundir;
use crate::sweep::{self, Job, RunResult};
use crate::task::TaskConfig;
use std::fmt::Write as _;
use std::path::Path;

pub const NAME: &str = "compare-decoders";
pub const DESCRIPTION: &str = "repeat vs teacher-forced vs attention decoders, one-hot vs embedding, reversed vs not, on 3/5/10-digit addition and 3-term expressions; writes a report";

/// A model variant: its label and what it changes in a task's base config.
struct Variant {
    name: &'static str,
    apply: fn(&mut ExperimentConfig),
}

fn teacher_forced(c: &mut ExperimentConfig) {
    c.model.decoder = DecoderKind::TeacherForced;
    c.codec.reverse_output = true;
}
fn attention(c: &mut ExperimentConfig) {
    teacher_forced(c);
    c.model.attention = true;
}
fn embedding(c: &mut ExperimentConfig) {
    c.model.input = InputKind::Embedding;
    c.model.embed_dim = 16;
}

const REPEAT: Variant = Variant {
    name: "repeat",
    apply: |_| {},
};
const TF: Variant = Variant {
    name: "teacher-forced",
    apply: teacher_forced,
};
const ATT: Variant = Variant {
    name: "attention",
    apply: attention,
};
const REPEAT_EMB: Variant = Variant {
    name: "repeat, embedding",
    apply: embedding,
};
const ATT_EMB: Variant = Variant {
    name: "attention, embedding",
    apply: |c| {
        attention(c);
        embedding(c);
    },
};
const REPEAT_FWD: Variant = Variant {
    name: "repeat, not reversed",
    apply: |c| c.codec.reverse_input = false,
};
const ATT_FWD: Variant = Variant {
    name: "attention, not reversed",
    apply: |c| {
        attention(c);
        c.codec.reverse_input = false;
    },
};

/// A task of the comparison: its label, base config, variants, and how many digits longer the
/// longest operands of the length test are.
struct Task {
    name: &'static str,
    base: fn(&mut ExperimentConfig),
    variants: &'static [Variant],
    longer: usize,
}

fn fresh(c: &mut ExperimentConfig, size: usize, epochs: usize) {
    c.data.size = size;
    c.data.val_fraction = 0.1;
    c.data.fresh_per_epoch = true;
    c.train.epochs = epochs;
}

const TASKS: &[Task] = &[
    Task {
        name: "3-digit",
        base: |c| c.train.epochs = 50,
        variants: &[REPEAT, TF, ATT, REPEAT_EMB, ATT_EMB, REPEAT_FWD, ATT_FWD],
        longer: 3,
    },
    Task {
        name: "5-digit",
        base: |c| {
            c.task.digits = 5;
            fresh(c, 50_000, 40);
        },
        variants: &[REPEAT, TF, ATT, ATT_EMB, ATT_FWD],
        longer: 3,
    },
    Task {
        name: "10-digit",
        base: |c| {
            c.task.digits = 10;
            fresh(c, 50_000, 20);
        },
        variants: &[REPEAT, TF, ATT],
        longer: 3,
    },
    Task {
        name: "3 terms +-*()",
        base: |c| {
            c.task = TaskConfig::expressions(3, 2, 1);
            fresh(c, 50_000, 20);
        },
        variants: &[REPEAT, TF, ATT],
        longer: 1,
    },
];

/// The task of `c` with every operand exactly `k` digits longer than the longest in training.
fn longer_task(c: &ExperimentConfig, k: usize) -> crate::task::TaskConfig {
    let mut t = c.task.clone();
    t.digits += k;
    t.min_digits = t.digits;
    t
}

/// Every run of the comparison (quick: tiny sizes that only check the pipeline).
pub fn jobs(quick: bool) -> Result<Vec<Job>, sweep::SweepError> {
    let mut jobs = Vec::new();
    for task in TASKS {
        for v in task.variants {
            let mut c = ExperimentConfig {
                name: NAME.into(),
                description: DESCRIPTION.into(),
                ..Default::default()
            };
            (task.base)(&mut c);
            (v.apply)(&mut c);
            c.train.stop_at_exact = Some(0.995);
            if quick {
                c.train.epochs = 2;
                c.model.hidden = 16;
                c.data.size = 600;
                c.data.fresh_per_epoch = false;
                c.task.digits = c.task.digits.min(2);
            }
            // Room in the widths for the length test (the same for every variant of a task).
            let longest = longer_task(&c, task.longer);
            c.codec.input_len = Some(longest.max_question_len());
            let eos = usize::from(c.model.decoder == DecoderKind::TeacherForced || c.model.mask);
            c.codec.output_len = Some(longest.max_answer_len() + eos);
            let id = format!("{} | {}", task.name, v.name);
            c.name = format!(
                "{}--{}",
                task.name.replace(['+', '-', '*', '(', ')', ' '], ""),
                v.name.replace([',', ' '], "-")
            );
            c.clone()
                .build()
                .map_err(|e| sweep::SweepError::Spec(format!("{id} cannot run: {e}")))?;
            jobs.push(Job {
                id,
                cell: vec![task.name.to_string(), v.name.to_string()],
                seed: c.seed,
                cfg: c,
            });
        }
    }
    Ok(jobs)
}

/// A report that could not be written, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Plot(#[from] crate::report::PlotError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
}

/// Writes `report.md` and its pictures into `out` from the finished runs in `dir/runs`.
pub fn write_report(
    dir: &Path,
    out: &Path,
    jobs: &[Job],
    results: &[RunResult],
    eval_n: usize,
    threads: usize,
) -> Result<String, ReportError> {
    std::fs::create_dir_all(out)?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Which decoder wins? Repeat vs teacher-forced vs attention\n\n\
         Produced by `seqcalc experiment run {NAME}` (one seed per configuration, one thread per \
         run, two runs at a time on the 2-core machine; seconds are wall time under that load).\n\n\
         - **repeat**: Keras `addition_rnn`: the encoder's last output repeated at every answer \
         step, answers padded to a fixed width.\n\
         - **teacher-forced**: the decoder starts from the encoder's final state and reads the \
         previous answer symbol (the true one in training, its own when answering: greedy), \
         answers end with `$` and are written least significant digit first.\n\
         - **attention**: teacher-forced plus Luong (general) attention over all encoder outputs.\n\
         - **embedding**: integer-encoded questions through a learned 16-wide embedding instead of \
         one-hot rows. **not reversed**: the question is read left to right (Keras reverses it).\n\n\
         Every model is LSTM(128) with Adam (lr 0.001), batch 128, early stopping on validation \
         loss (patience 5), stopping at 0.995 validation exact match. 3-digit: Keras's fixed \
         50,000 questions, at most 50 epochs; 5- and 10-digit and expressions: 45,000 new \
         questions every epoch (5,000 fixed for validation), at most 40, 20 and 20 epochs. All \
         models of a task have the same question and answer widths, wide enough for the length \
         test. **Exact** is whole-answer exact match on {eval_n} fresh questions never seen in \
         training or validation; per char is per-character accuracy (what Keras calls accuracy).\n"
    );
    if results.len() < jobs.len() {
        let missing: Vec<&str> = jobs
            .iter()
            .filter(|j| !results.iter().any(|r| r.id == j.id))
            .map(|j| j.id.as_str())
            .collect();
        let _ = writeln!(
            md,
            "**Partial report: {} of {} runs finished.** Not run yet: {}. Rerun the command to \
             finish them (finished runs are kept).\n",
            results.len(),
            jobs.len(),
            missing.join("; ")
        );
    }
    // 1. The main table.
    let _ = writeln!(md, "## Exact match on fresh questions\n");
    let _ = writeln!(
        md,
        "| task | model | parameters | exact | per char | epochs | seconds | epochs to 0.99 | seconds to 0.99 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let get = |j: &Job| results.iter().find(|r| r.id == j.id);
    for j in jobs {
        let Some(r) = get(j) else { continue };
        let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} |",
            j.cell[0],
            j.cell[1],
            r.params,
            r.error
                .as_ref()
                .map_or_else(|| f(r.fresh_exact), |e| format!("failed: {e}")),
            f(r.fresh_char),
            r.epochs,
            r.seconds,
            r.epochs_to_target
                .map_or("not reached".into(), |e| e.to_string()),
            r.seconds_to_target
                .map_or("-".into(), |s| format!("{s:.0}")),
        );
    }
    let tasks: Vec<String> = TASKS.iter().map(|t| t.name.to_string()).collect();
    let mut variants: Vec<String> = Vec::new();
    for t in TASKS {
        for v in t.variants {
            if !variants.iter().any(|x| x == v.name) {
                variants.push(v.name.to_string());
            }
        }
    }
    let cell_of = |task: &str, variant: &str| -> Option<&RunResult> {
        jobs.iter()
            .find(|j| j.cell[0] == task && j.cell[1] == variant)
            .and_then(get)
    };
    let values: Vec<Vec<Option<f64>>> = variants
        .iter()
        .map(|v| {
            tasks
                .iter()
                .map(|t| cell_of(t, v).and_then(|r| r.fresh_exact))
                .collect()
        })
        .collect();
    let texts = cell_texts(&values);
    report::plot_heatmap(
        &report::Heatmap {
            title: "exact match on fresh questions",
            rows: &variants,
            cols: &tasks,
            values: &values,
            texts: &texts,
        },
        &out.join("exact.svg"),
        &out.join("exact.png"),
    )?;
    let _ = writeln!(md, "\n![exact match by task and model](exact.png)\n");
    // 2. Per-run evaluations: by answer length, and on longer operands.
    let mut by_len = String::new();
    let mut longer_rows: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    let mut longer_md = String::new();
    for task in TASKS {
        let _ = writeln!(
            by_len,
            "\n**{}** (exact match by the length of the right answer; n per length in brackets)\n",
            task.name
        );
        let mut header_done = false;
        let mut curves: Vec<(String, History)> = Vec::new();
        for v in task.variants {
            let Some(j) = jobs
                .iter()
                .find(|j| j.cell[0] == task.name && j.cell[1] == v.name)
            else {
                continue;
            };
            let run_dir = dir.join("runs").join(&j.cfg.name);
            let Ok(run) = rundir::load_run(&run_dir) else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(run_dir.join("history.json")) {
                if let Ok(h) = History::from_json(&text) {
                    curves.push((v.name.to_string(), h));
                }
            }
            let rep = eval::evaluate_fresh(&run, eval_n, 7, threads)?;
            if !header_done {
                let lens: Vec<String> = rep
                    .by_answer_length
                    .iter()
                    .map(|g| format!("{} ({})", g.key, g.n))
                    .collect();
                let _ = writeln!(
                    by_len,
                    "| model | {} |\n|{}",
                    lens.join(" | "),
                    " --- |".repeat(lens.len() + 1)
                );
                header_done = true;
            }
            let cells: Vec<String> = rep
                .by_answer_length
                .iter()
                .map(|g| format!("{:.3}", g.exact_match))
                .collect();
            let _ = writeln!(by_len, "| {} | {} |", v.name, cells.join(" | "));
            let mut row = Vec::new();
            let mut cells = Vec::new();
            for k in 1..=task.longer {
                let t = longer_task(&run.cfg, k);
                match eval::evaluate_fresh_on(&run, &t, eval_n.min(1000), 7, threads) {
                    Ok(r) => {
                        row.push(Some(r.exact_match));
                        cells.push(format!("{:.3} ({:.3})", r.exact_match, r.char_accuracy));
                    }
                    Err(e) => {
                        row.push(None);
                        cells.push(format!("cannot: {e}"));
                    }
                }
            }
            let _ = writeln!(
                longer_md,
                "| {} | {} | {} | {} |",
                task.name,
                v.name,
                run.cfg.task.digits,
                cells.join(" | ")
            );
            longer_rows.push((format!("{} | {}", task.name, v.name), row));
        }
        if !curves.is_empty() {
            let stem = task.name.replace(['+', '-', '*', '(', ')', ' '], "");
            report::plot_compare(
                &curves,
                &out.join(format!("curves-{stem}.svg")),
                &out.join(format!("curves-{stem}.png")),
            )?;
            let _ = writeln!(
                by_len,
                "\n![validation curves, {}](curves-{stem}.png)\n",
                task.name
            );
        }
    }
    let _ = writeln!(md, "## By answer length, and validation curves\n{by_len}");
    let _ = writeln!(
        md,
        "## Operands longer than any seen in training\n\n\
         Every operand exactly k digits longer than the longest in training (both operands, or \
         all three terms); exact match with per-character accuracy in brackets, on up to 1,000 \
         fresh questions.\n\n\
         | task | model | trained digits | +1 | +2 | +3 |\n| --- | --- | --- | --- | --- | --- |\n{longer_md}"
    );
    let rows: Vec<String> = longer_rows.iter().map(|r| r.0.clone()).collect();
    let cols: Vec<String> = (1..=3).map(|k| format!("+{k} digits")).collect();
    let values: Vec<Vec<Option<f64>>> = longer_rows
        .iter()
        .map(|r| (0..3).map(|k| r.1.get(k).copied().flatten()).collect())
        .collect();
    let texts = cell_texts(&values);
    report::plot_heatmap(
        &report::Heatmap {
            title: "exact match on longer operands than trained",
            rows: &rows,
            cols: &cols,
            values: &values,
            texts: &texts,
        },
        &out.join("longer.svg"),
        &out.join("longer.png"),
    )?;
    let _ = writeln!(md, "![exact match on longer operands](longer.png)\n");
    md.push_str(BEYOND);
    crate::fsutil::write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(md)
}

/// Where the report's two failures are taken further (the runs there are too long for it).
const BEYOND: &str = "## What fails here, and where it is taken further\n\n\
- **3 terms with `*` and brackets**: no recurrent decoder above comes near the bar (0.95). A \
transformer that writes its work before the answer (`--kind transformer --scratchpad`, the \
built-in `expression-3terms`) reaches 0.981 exact on 10,000 fresh questions; without the \
scratchpad the same transformer stalls near 0.75. See `docs/expression-3terms/report.md`.\n\
- **Longer operands than trained**: every model above scores 0 from one digit more. \
`seqcalc experiment run length-generalisation` trains a transformer with coupled positions and \
a relative attention bias on 1..20 digits that answers 100-digit sums; \
`docs/length-generalisation/report.md` has it, with the aligned-pairs GRU baseline.\n";

/// Heatmap cell texts: three decimals, "-" where there is no value.
fn cell_texts(values: &[Vec<Option<f64>>]) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.map_or("-".into(), |v| format!("{v:.3}")))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_builds_with_room_for_the_length_test() {
        for quick in [false, true] {
            let jobs = jobs(quick).unwrap();
            assert_eq!(jobs.len(), 18);
            for j in &jobs {
                let task = TASKS.iter().find(|t| t.name == j.cell[0]).unwrap();
                let longest = longer_task(&j.cfg, task.longer);
                let mut c = j.cfg.clone();
                let (codec, _) = c.build().unwrap();
                assert!(codec.input_len() >= longest.max_question_len(), "{}", j.id);
                assert!(
                    codec.output_len() >= codec.output_steps(longest.max_answer_len()),
                    "{}",
                    j.id
                );
            }
            let names: std::collections::HashSet<&str> =
                jobs.iter().map(|j| j.cfg.name.as_str()).collect();
            assert_eq!(names.len(), jobs.len(), "run directories are distinct");
        }
    }
}
