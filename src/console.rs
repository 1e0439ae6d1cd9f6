//! What `train` prints for a seq2seq run, as the tutorials do: data statistics, an encoded
//! example, the model summary, a progress bar and one line per epoch, sample questions, and
//! where the run went.

use crate::config::ExperimentConfig;
use crate::data::Dataset;
use crate::report;
use crate::task::{self, TaskKind};
use crate::train::{self, Event};
use std::io::Write;

/// Trains with the tutorial's printout: data statistics, an encoded example, the summary, a
/// progress bar and one line per epoch, sample questions, and where the run went.
pub fn run_training(
    cfg: ExperimentConfig,
    dir: &std::path::Path,
    open: crate::rundir::Open,
    interrupt: &std::sync::atomic::AtomicBool,
    on_start: &mut dyn FnMut(&Dataset, &Dataset, usize),
) -> Result<train::Outcome, train::TrainError> {
    // A question of this task for the closing hint ("12+345" fits only some tasks).
    // (pq questions start with '-', so they go after `--` or the flag parser takes them.)
    let example = match cfg.task.kind {
        TaskKind::PqSystem => "-- \"--p---\"".to_string(),
        _ => task::generate(&cfg.task, 1, 12_345)
            .ok()
            .and_then(|v| v.into_iter().next())
            .map_or_else(
                || "\"12+345\"".to_string(),
                |p| format!("\"{}\"", p.question),
            ),
    };
    let color = report::stdout_color();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut out = std::io::stdout();
    let outcome = train::run(cfg, dir, open, interrupt, &mut |ev| match ev {
        Event::Start {
            cfg,
            model,
            codec,
            train,
            val,
            threads,
            resumed_at,
        } => {
            on_start(train, val, threads);
            let _ = writeln!(out, "{}", data_statistics(train, val));
            if let Some(p) = train.problems.first() {
                // Long sequences (the pq-system's 2001 symbols) are shown as runs.
                let short = |t: &str| report::abbreviate(t, 60);
                let indices = |v: &[u8]| {
                    let shown: Vec<String> = v.iter().take(24).map(|i| i.to_string()).collect();
                    format!(
                        "[{}{}]",
                        shown.join(", "),
                        if v.len() > 24 {
                            format!(", ... {} in all", v.len())
                        } else {
                            String::new()
                        }
                    )
                };
                let _ = writeln!(
                    out,
                    "Example: \"{}\" -> \"{}\"",
                    short(&p.question),
                    short(&p.answer)
                );
                let syms: Vec<char> = codec.alphabet().chars().collect();
                let padded: String = train.input(0).iter().map(|&i| syms[i as usize]).collect();
                let _ = writeln!(
                    out,
                    "  encoded question (padded{}): \"{}\" = indices {}",
                    if codec.config().reverse_input {
                        ", reversed"
                    } else {
                        ""
                    },
                    short(&padded),
                    indices(train.input(0))
                );
                let _ = writeln!(
                    out,
                    "  as one-hot rows over `{}`: {}",
                    codec.alphabet(),
                    one_hot_preview(train.input(0), codec.vocab_size())
                );
                let _ = writeln!(
                    out,
                    "  encoded answer: indices {}",
                    indices(train.target(0))
                );
            }
            let _ = writeln!(out, "\n{}", model.summary());
            let _ = writeln!(
                out,
                "Training {} on {} questions, validating on {}, batch {}, {} threads, seed {}{}",
                cfg.name,
                train.n,
                val.n,
                cfg.train.batch_size,
                threads,
                cfg.seed,
                resumed_at.map_or(String::new(), |e| format!(", resumed after epoch {e}"))
            );
        }
        Event::EpochStart {
            epoch,
            epochs,
            examples,
        } => {
            bar = Some(report::epoch_bar(epoch, epochs, examples as u64));
        }
        Event::Progress { done } => {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        }
        Event::EpochEnd {
            record: r,
            samples,
            improved,
        } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            let _ = writeln!(
                out,
                "Epoch {:>3}  loss {:.4}  acc {:.4}  |  val_loss {:.4}  val_acc {:.4}  val_exact {:.4}  |  {:.2}s{}",
                r.epoch, r.train_loss, r.train_char_acc, r.val_loss, r.val_char_acc, r.val_exact, r.epoch_secs, if improved { "  *" } else { "" }
            );
            if !samples.is_empty() {
                let _ = write!(out, "{}", report::format_samples(samples, color, 60));
            }
        }
        Event::Stop { reason } => {
            let _ = writeln!(out, "Stopped: {reason}");
        }
    })?;
    if outcome.interrupted {
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "Interrupted: checkpoint written after {} full epochs and {} batches of the next.\nResume with: seqcalc train --resume {}",
            outcome.state.epochs_done,
            outcome.state.batches_done,
            outcome.dir.display()
        );
        return Ok(outcome);
    }
    if let Some(best) = outcome.best() {
        println!(
            "\nKept the weights of epoch {}: validation exact match {:.4}, per-character accuracy {:.4}, loss {:.4}",
            best.epoch, best.val_exact, best.val_char_acc, best.val_loss
        );
    }
    println!("Run directory: {}", outcome.dir.display());
    println!(
        "Next: seqcalc eval --model {0}   |   seqcalc predict --model {0} {example}",
        outcome.dir.display()
    );
    Ok(outcome)
}

fn one_hot_preview(row: &[u8], v: usize) -> String {
    row.iter()
        .take(3)
        .map(|&i| {
            (0..v)
                .map(|j| if j == i as usize { '1' } else { '0' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
        + if row.len() > 3 { " ..." } else { "" }
}

fn data_statistics(train: &Dataset, val: &Dataset) -> String {
    let all = train.problems.iter().chain(&val.problems);
    let (mut qn, mut qmin, mut qmax, mut qs, mut an, mut amin, mut amax, mut as_) =
        (0usize, usize::MAX, 0, 0usize, 0usize, usize::MAX, 0, 0usize);
    for p in all {
        let (q, a) = (p.question.chars().count(), p.answer.chars().count());
        qn += 1;
        qs += q;
        qmin = qmin.min(q);
        qmax = qmax.max(q);
        an += 1;
        as_ += a;
        amin = amin.min(a);
        amax = amax.max(a);
    }
    format!(
        "Data: {} questions ({} train, {} validation)\n  question length: average {:.2}, shortest {}, longest {}\n  answer length:   average {:.2}, shortest {}, longest {}",
        qn,
        train.n,
        val.n,
        qs as f64 / qn.max(1) as f64,
        qmin,
        qmax,
        as_ as f64 / an.max(1) as f64,
        amin,
        amax
    )
}
