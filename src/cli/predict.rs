//! `seqcalc predict`: answers questions with a trained model of any kind, from the arguments or
//! one per line of stdin.

use super::{color, mark};
use anyhow::{bail, Context, Result};
use clap::Args;
use seqcalc::model::{ModelKind, Seq2SeqEngine};
use seqcalc::run::{Answer, Run};
use seqcalc::rundir;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct PredictArgs {
    /// Run directory of a trained model.
    #[arg(long)]
    pub model: PathBuf,
    /// Questions as a person writes them, e.g. "12+345". None, or `-`: one question per line of
    /// stdin (`seqcalc data --format questions | seqcalc predict --model DIR`).
    pub questions: Vec<String>,
    /// Write one JSON object per question (input, output, confidence, correct, error).
    #[arg(long)]
    pub jsonl: bool,
    /// Also show which question characters each answer character attended to (seq2seq models
    /// with attention).
    #[arg(long)]
    pub explain: bool,
    /// Worker threads (default 1).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// One line of `--jsonl` output, fields in this order.
#[derive(serde::Serialize)]
struct JsonlLine<'a> {
    input: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    answer: Option<&'a Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

pub fn exec(a: PredictArgs) -> Result<ExitCode> {
    if a.threads == 0 || a.threads > seqcalc::parallel::MAX_THREADS {
        bail!(
            "--threads {} must be in 1..={}",
            a.threads,
            seqcalc::parallel::MAX_THREADS
        );
    }
    let mut run = Run::load(&a.model, a.threads)?;
    if a.explain && !matches!(run, Run::Seq2seq { .. }) {
        bail!(
            "--explain shows the attention of seq2seq models trained with --attention; {} is a {} run",
            a.model.display(),
            run.kind()
        );
    }
    let from_stdin = a.questions.is_empty() || a.questions == ["-"];
    if !from_stdin && a.questions.iter().any(|q| q == "-") {
        bail!("`-` (read stdin) cannot be mixed with questions given as arguments");
    }
    let color = color();
    let rows = run.batch_rows();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    let mut answer_batch = |lines: &[(String, bool)],
                            out: &mut std::io::StdoutLock,
                            failed: &mut bool|
     -> Result<()> {
        let valid: Vec<&str> = lines
            .iter()
            .filter(|(_, utf8)| *utf8)
            .map(|(q, _)| q.as_str())
            .collect();
        let mut answers = run.answer(&valid).into_iter();
        for (q, utf8) in lines {
            let r = match utf8 {
                true => answers.next().expect("one answer per valid line"),
                false => Err("line is not valid UTF-8".to_string()),
            };
            *failed |= r.is_err();
            if a.jsonl {
                let line = JsonlLine {
                    input: q,
                    answer: r.as_ref().ok(),
                    error: r.as_ref().err().map(String::as_str),
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
                continue;
            }
            match r {
                Ok(ans) => {
                    writeln!(out, "{}", human_line(q.trim(), &ans, color))?;
                    if let Some(work) = &ans.work {
                        writeln!(out, "    work: {work}")?;
                    }
                    if a.explain {
                        if let Run::Seq2seq { run, engine } = &mut run {
                            explain(engine, run, q.trim(), out)?;
                        }
                    }
                }
                Err(e) => eprintln!("error: {q:?}: {e}"),
            }
        }
        Ok(())
    };
    if from_stdin {
        let mut batch: Vec<(String, bool)> = Vec::new();
        let mut batch_bytes = 0usize;
        for line in std::io::stdin().lock().split(b'\n') {
            let line = line.context("reading stdin")?;
            let utf8 = std::str::from_utf8(&line).is_ok();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            batch_bytes += text.len();
            batch.push((text, utf8));
            // A batch is as many questions as inference handles at once, and at most a few
            // megabytes of text (lines can be long).
            if batch.len() >= rows || batch_bytes >= 8 << 20 {
                answer_batch(&batch, &mut out, &mut failed)?;
                batch.clear();
                batch_bytes = 0;
            }
        }
        answer_batch(&batch, &mut out, &mut failed)?;
    } else {
        let batch: Vec<(String, bool)> = a.questions.iter().map(|q| (q.clone(), true)).collect();
        answer_batch(&batch, &mut out, &mut failed)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `12+345 = 357   (confidence 0.998)  ✓`; an empty answer shows as `""`.
fn human_line(q: &str, ans: &Answer, color: bool) -> String {
    let shown = if ans.output.is_empty() {
        "\"\" (empty answer)".to_string()
    } else {
        ans.output.clone()
    };
    let detail = match (ans.confidence, ans.value) {
        (Some(c), _) => format!("   (confidence {c:.3})"),
        (None, Some(v)) => format!("   (regression output {v:.3})"),
        (None, None) => String::new(),
    };
    let check = ans
        .correct
        .map_or(String::new(), |c| format!("  {}", mark(c, color)));
    format!("{q} = {shown}{detail}{check}")
}

/// `predict --explain`: for each answer step, the question characters it attended to most.
pub fn explain(
    engine: &mut Seq2SeqEngine<f32>,
    run: &rundir::LoadedRun,
    question: &str,
    out: &mut impl Write,
) -> Result<()> {
    let (t_in, t_out) = (run.codec.input_len(), run.codec.output_len());
    let mut enc = vec![0u8; t_in];
    run.codec.encode_input(question, &mut enc)?;
    if engine.model.cfg.kind == ModelKind::Transformer {
        bail!("--explain shows the attention of RNN models trained with --attention; it does not read transformer heads yet");
    }
    let Some(w) = engine.attention_weights(&run.params, &enc, 1) else {
        bail!("--explain needs a model with attention (train with --attention)");
    };
    let chosen = engine.predict_indices(&run.params, &enc, 1);
    // Input position -> column of the question as typed (the model may read it reversed).
    let typed: Vec<char> = question.chars().collect();
    let column = |s: usize| -> Option<usize> {
        let pos = if run.codec.config().reverse_input {
            t_in - 1 - s
        } else {
            s
        };
        match run.codec.config().pad_side {
            seqcalc::codec::PadSide::Right => (pos < typed.len()).then_some(pos),
            seqcalc::codec::PadSide::Left => {
                let pad = t_in - typed.len();
                (pos >= pad).then(|| pos - pad)
            }
        }
    };
    writeln!(
        out,
        "  attention (output step: symbol <- question characters, column and weight){}",
        if run.codec.config().reverse_output {
            "; the model writes the answer backwards"
        } else {
            ""
        }
    )?;
    for s in 0..t_out {
        let sym = chosen[s];
        let row = &w[s * t_in..(s + 1) * t_in];
        let mut order: Vec<usize> = (0..t_in).collect();
        order.sort_by(|&x, &y| row[y].total_cmp(&row[x]));
        let top: Vec<String> = order
            .iter()
            .take(3)
            .filter(|&&i| row[i] >= 0.05)
            .map(|&i| match column(i) {
                Some(c) => format!("{:?}@{} {:.2}", typed[c], c + 1, row[i]),
                None => format!("pad {:.2}", row[i]),
            })
            .collect();
        writeln!(
            out,
            "  {:>2}: {:?} <- {}",
            s + 1,
            run.codec.symbol(sym),
            top.join(", ")
        )?;
        if Some(sym) == run.codec.eos_index() {
            break;
        }
    }
    Ok(())
}
