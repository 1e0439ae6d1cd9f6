//! `seqcalc experiment`: the built-in experiments reproducing the tutorials. Each is a plain run
//! config: `show` prints it as TOML (train it with `train --config`), `run` trains it and judges
//! the result against the tutorial's claim. `compare-decoders` is a report over 18 runs.

use super::flags::RunFlags;
use super::train;
use super::{lengths, signals};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use seqcalc::config::ExperimentConfig;
use seqcalc::eval::EvalReport;
use seqcalc::experiment::Experiment;
use seqcalc::run::{self, RunConfig};
use seqcalc::rundir::LoadedRun;
use seqcalc::training::Trained;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ExperimentCmd {
    /// Name, expected time, what it reproduces.
    List,
    /// Print an experiment's config as TOML (edit it and pass it to `train --config`).
    Show {
        name: String,
        /// The tiny version `run --quick` trains.
        #[arg(long)]
        quick: bool,
    },
    /// Run one or more experiments, one after the other, with a verdict for each.
    Run(Box<ExperimentRunArgs>),
}

#[derive(Args)]
pub struct ExperimentRunArgs {
    /// Experiment names (see `seqcalc experiment list`).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// A tiny version that runs in seconds (to check it works, not to reproduce results).
    #[arg(long)]
    pub quick: bool,
    /// Where run directories go.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Also write the results as a Markdown table to this file (with the date, machine and
    /// commit), scored on 10,000 fresh questions per seq2seq run, and on the whole domain where
    /// it has at most 10,000,000 questions. In a file that has the lines
    /// `<!-- results:begin -->` and `<!-- results:end -->`, only what is between them is
    /// replaced.
    #[arg(long, value_name = "FILE.md")]
    pub results: Option<PathBuf>,
    /// Go on with the runs of these experiments that exist under --runs-dir (a finished one
    /// trains nothing and is reported again; only --epochs and --threads apply to them) and
    /// start the others.
    #[arg(long)]
    pub resume: bool,
    /// compare-decoders: where report.md and its pictures go (default:
    /// <runs-dir>/compare-decoders/report).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// compare-decoders: its runs on a Ray cluster (the other experiments train here).
    #[command(flatten)]
    pub ray: super::sweep::RayFlags,
    #[command(flatten)]
    pub flags: RunFlags,
}

/// The experiment called `name`, or an error listing the names.
pub fn find(name: &str) -> Result<Experiment> {
    seqcalc::experiment::find(name).ok_or_else(|| {
        let mut names: Vec<&str> = seqcalc::experiment::all().iter().map(|e| e.name).collect();
        names.push(seqcalc::compare::NAME);
        anyhow!("unknown experiment {name:?}; known: {}", names.join(", "))
    })
}

pub fn exec(cmd: ExperimentCmd) -> Result<ExitCode> {
    match cmd {
        ExperimentCmd::List => {
            println!(
                "{:<27}{:<21}{:<46}reproduces",
                "name", "kind", "expected time (2 cores)"
            );
            for e in seqcalc::experiment::all() {
                println!(
                    "{:<27}{:<21}{:<46}{}",
                    e.name,
                    e.kind().name(),
                    e.expected_time,
                    e.reproduces
                );
            }
            println!("\nReports (several runs each; `experiment run NAME` trains them and writes the report):");
            println!(
                "{:<27}{:<21}{:<46}{}",
                seqcalc::compare::NAME,
                "18 seq2seq runs",
                "about 1 hour",
                seqcalc::compare::DESCRIPTION
            );
        }
        ExperimentCmd::Show { name, quick } => {
            if name == seqcalc::compare::NAME {
                print!("{}", compare_decoders_toml(quick)?);
                return Ok(ExitCode::SUCCESS);
            }
            let e = find(&name)?;
            let mut cfg = e.run_config(quick);
            cfg.validate()?;
            print!(
                "# {}: {}\n# Train it with `seqcalc train --config FILE`, or `seqcalc experiment run {}`.\n{}",
                e.name,
                e.reproduces,
                e.name,
                cfg.to_toml()
            );
        }
        ExperimentCmd::Run(a) => return run(&a),
    }
    Ok(ExitCode::SUCCESS)
}

/// The cells of a results row after the experiment's: kind, what was trained, exact match on
/// fresh questions, the verdict and the seconds of training (`secs`, this command's time, for
/// a kind that records none).
fn result_row(
    e: &Experiment,
    trained: &Trained,
    run: Option<&LoadedRun>,
    whole: Option<&EvalReport>,
    verdict: &str,
    secs: f64,
) -> Result<String> {
    let threads = seqcalc::parallel::default_threads();
    let train_secs = match trained {
        Trained::Seq2seq(o) => o
            .state
            .history
            .records
            .last()
            .map_or(0.0, |r| r.elapsed_secs),
        Trained::CoupledTransformer { outcome, .. } | Trained::PairGru { outcome, .. } => {
            outcome.train_secs
        }
        Trained::Regression(_) => secs,
    };
    let (trained_for, score) = match trained {
        Trained::Seq2seq(o) => {
            let run = run.ok_or_else(|| anyhow!("a seq2seq row needs its run"))?;
            let best = o.best();
            let val = best.map_or(0.0, |b| b.val_exact);
            // Small tasks have fewer unseen questions than 10,000, some none at all.
            let distinct = run.cfg.task.distinct_questions();
            let unseen = distinct.saturating_sub(run.cfg.data.size as u128);
            let n = unseen.min(10_000) as usize;
            let fresh = (n > 0)
                .then(|| seqcalc::eval::evaluate_fresh_on(run, &run.cfg.task, n, 7, threads))
                .and_then(Result::ok);
            let score = match fresh {
                Some(rep) => format!(
                    "**{:.4}** on {} fresh (validation {val:.4})",
                    rep.exact_match, rep.n
                ),
                None => format!(
                    "validation **{val:.4}** (no unseen questions left: the task has {distinct})"
                ),
            };
            (
                format!(
                    "{} epochs, kept {}",
                    o.state.history.records.len(),
                    best.map_or(0, |b| b.epoch)
                ),
                score,
            )
        }
        Trained::Regression(rep) => (
            format!("{} epochs", rep.history.records.len()),
            format!("RMSE {:.3} on {} new", rep.rmse, rep.pairs.len()),
        ),
        Trained::CoupledTransformer { outcome, .. } | Trained::PairGru { outcome, .. } => (
            format!("{} steps", outcome.steps),
            if whole.is_some() {
                "every question: see whole domain".to_string()
            } else {
                "by length: see the verdict".to_string()
            },
        ),
    };
    let verdict = verdict
        .split_once(": ")
        .map_or(verdict, |(_, v)| v)
        .replace('|', "/");
    let whole = whole.map_or(String::new(), |r| {
        format!(
            "**{:.6}** ({} of {} wrong)",
            r.exact_match,
            r.n - r.exact,
            r.n
        )
    });
    Ok(format!(
        "| {} | {trained_for} | {score} | {whole} | {verdict} | {train_secs:.0} |",
        e.kind().name()
    ))
}

/// Where and when the run in `dir` was trained, from its manifest: the day it ended, the
/// commit, the CPU, threads and kernel level.
fn measured(dir: &std::path::Path) -> String {
    let Some(m) = run::Manifest::load(dir) else {
        return "(no manifest)".into();
    };
    let day = m.ended.as_deref().unwrap_or(&m.started);
    format!(
        "{}, {}, {}, {} thread{}, {} kernels",
        day.get(..10).unwrap_or(day),
        m.git_commit
            .map_or("commit unknown".to_string(), |c| format!("commit {c}")),
        m.cpu,
        m.threads,
        if m.threads == 1 { "" } else { "s" },
        m.kernel_level,
    )
}

/// Most questions `experiment run --quick` scores over the whole domain (a quick run only
/// checks that the step runs).
const QUICK_WHOLE_DOMAIN: u128 = 10_000;

/// The most questions `experiment run` scores over a whole domain.
fn domain_limit(quick: bool) -> u128 {
    if quick {
        QUICK_WHOLE_DOMAIN
    } else {
        seqcalc::task::exhaustive::MAX_DOMAIN
    }
}

/// Scores a trained seq2seq run on every question of its task's domain when that is small
/// enough (`eval --exhaustive`), and prints the result; `None` for larger domains.
fn whole_domain(run: &LoadedRun, quick: bool) -> Result<Option<EvalReport>> {
    if seqcalc::task::exhaustive::domain_size(&run.cfg.task)? > domain_limit(quick) {
        return Ok(None);
    }
    let threads = seqcalc::parallel::default_threads();
    let rep = match seqcalc::eval::evaluate_exhaustive(run, &run.cfg.task, threads) {
        Ok(rep) => rep,
        // Too many symbols to read (long pq-system questions): no whole-domain score.
        Err(seqcalc::eval::EvalError::DoesNotFit(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    print_whole(&rep);
    Ok(Some(rep))
}

/// Scores a trained long-addition run on every `a+b` with operands up to the longest it
/// trained on, when those are few enough (`eval --exhaustive`); `None` otherwise.
fn whole_domain_long(dir: &std::path::Path, quick: bool) -> Result<Option<EvalReport>> {
    let mut run = seqcalc::run::Run::load(dir, seqcalc::parallel::default_threads())?;
    let Some(task) = run.addition_domain(None) else {
        return Ok(None);
    };
    // A training length past what a task config takes has no domain to walk.
    match seqcalc::task::exhaustive::domain_size(&task) {
        Ok(size) if size <= domain_limit(quick) => {}
        _ => return Ok(None),
    }
    let rep = seqcalc::eval::evaluate_exhaustive_with(&task, |qs| run.answer(qs))?;
    print_whole(&rep);
    Ok(Some(rep))
}

fn print_whole(rep: &EvalReport) {
    let first = rep
        .failures
        .first()
        .map_or(String::new(), |(q, want, got)| {
            format!("; the first: {q} = {want}, got {got}")
        });
    println!(
        "Whole domain: {} of {} questions right ({:.6}), {} wrong{first}",
        rep.exact,
        rep.n,
        rep.exact_match,
        rep.n - rep.exact
    );
}

const RESULTS_HEAD: &str =
    "Rows written by `seqcalc experiment run NAME --results FILE`; exact match is of \
    the whole answer, on fresh questions (none seen in training) unless the row says otherwise.\n\n\
    | experiment | kind | trained | exact match | whole domain | verdict | training s | measured |\n\
    | --- | --- | --- | --- | --- | --- | ---: | --- |\n";

/// The results table of `old` (a table this command wrote, or nothing) with `new` rows
/// (experiment, row) in place of the rows of the same experiments, and after the others.
fn results_table(old: &str, new: &[(String, String)]) -> String {
    let mut rows: Vec<(String, String)> = old
        .lines()
        .filter_map(|l| {
            let key = l.strip_prefix("| ")?.split(" |").next()?.trim();
            (key != "experiment" && !key.starts_with("---"))
                .then(|| (key.to_string(), l.to_string()))
        })
        .collect();
    for (key, row) in new {
        match rows.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = row.clone(),
            None => rows.push((key.clone(), row.clone())),
        }
    }
    let mut out = RESULTS_HEAD.to_string();
    for (_, row) in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

/// Writes `new` rows into the results table at `path`: into the part between its results
/// markers when it has them, else into the whole file (created if missing).
fn write_results(path: &std::path::Path, new: &[(String, String)]) -> Result<()> {
    let page = match std::fs::read_to_string(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let text = match split_results(&page) {
        Some((before, table, after)) => format!("{before}{}{after}", results_table(table, new)),
        None => results_table(&page, new),
    };
    seqcalc::fsutil::write_atomic(path, text.as_bytes())?;
    Ok(())
}

const RESULTS_BEGIN: &str = "<!-- results:begin -->";
const RESULTS_END: &str = "<!-- results:end -->";

/// `page` split into what comes before the results table, the table (between the marker
/// lines) and what comes after it; `None` when the page has no such pair of markers.
fn split_results(page: &str) -> Option<(&str, &str, &str)> {
    // Markers stand on lines of their own (a page may quote them in its text).
    let begin = if page.starts_with(&format!("{RESULTS_BEGIN}\n")) {
        0
    } else {
        page.find(&format!("\n{RESULTS_BEGIN}\n"))? + 1
    } + RESULTS_BEGIN.len()
        + 1;
    let end = begin + page[begin..].find(&format!("{RESULTS_END}\n"))?;
    if end > begin && !page[..end].ends_with('\n') {
        return None;
    }
    Some((&page[..begin], &page[begin..end], &page[end..]))
}

/// The 18 configs of the decoder comparison, one TOML document each.
fn compare_decoders_toml(quick: bool) -> Result<String> {
    let mut out = format!(
        "# {}: {}\n# A report over these runs: `seqcalc experiment run {}` trains them all and writes it.\n# Each document below is one run's config (split at the `# ---` lines to train one).\n",
        seqcalc::compare::NAME,
        seqcalc::compare::DESCRIPTION,
        seqcalc::compare::NAME
    );
    for job in seqcalc::compare::jobs(quick)? {
        out.push_str(&format!(
            "# --- {}\n{}",
            job.id,
            RunConfig::Seq2seq(job.cfg.clone()).to_toml()
        ));
    }
    Ok(out)
}

fn run(a: &ExperimentRunArgs) -> Result<ExitCode> {
    if a.ray.ray.is_some() && a.names.iter().any(|n| n != seqcalc::compare::NAME) {
        bail!(
            "--ray trains the runs of {} on a cluster; run the other experiments without it",
            seqcalc::compare::NAME
        );
    }
    // The cluster's options are checked before anything trains.
    a.ray.executor(None)?;
    let exps = a
        .names
        .iter()
        .filter(|n| *n != seqcalc::compare::NAME)
        .map(|n| find(n))
        .collect::<Result<Vec<_>>>()?;
    let mut configs = Vec::new();
    for e in &exps {
        let mut cfg = e.run_config(a.quick);
        let dir = seqcalc::rundir::run_path(&a.runs_dir, cfg.name())?;
        let open = if a.resume && dir.join(seqcalc::rundir::CONFIG).is_file() {
            cfg = run::load_config(&dir)?;
            a.flags.apply_on_resume(&mut cfg)?;
            seqcalc::rundir::Open::Resume
        } else {
            a.flags.apply(&mut cfg)?;
            seqcalc::rundir::Open::New
        };
        cfg.validate()?;
        configs.push((cfg, dir, open));
    }
    signals::cooperate();
    if a.names.iter().any(|n| n == seqcalc::compare::NAME) {
        run_compare_decoders(a)?;
    }
    let mut results = Vec::new();
    let mut rmses = Vec::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for (e, (cfg, dir, open)) in exps.iter().zip(configs) {
        if signals::stopped() {
            break;
        }
        println!("=== {} ({})", cfg.name(), e.reproduces);
        let t0 = std::time::Instant::now();
        let mut trained = train::train(cfg.clone(), &dir, open)?;
        if signals::stopped() {
            break;
        }
        let secs = t0.elapsed().as_secs_f64();
        let mut whole = None;
        // A seq2seq run is read back once, for its whole-domain and fresh scores.
        let loaded = match &trained {
            Trained::Seq2seq(_) => Some(seqcalc::rundir::load_run(&dir)?),
            _ => None,
        };
        let mut verdict = match &mut trained {
            Trained::Seq2seq(outcome) => {
                let best = outcome.best().cloned();
                if let Some(run) = &loaded {
                    whole = whole_domain(run, a.quick)?;
                }
                let v = match &whole {
                    Some(rep) if e.claim_whole_domain => {
                        e.verdict_whole_domain(rep.n - rep.exact, rep.n)
                    }
                    _ => e.verdict(best.as_ref().map_or(0.0, |b| b.val_exact)),
                };
                results.push((e.name, best));
                v
            }
            Trained::Regression(rep) => {
                rmses.push((e.name, rep.rmse));
                format!(
                    "{}: RMSE {:.3} on {} new examples",
                    e.name,
                    rep.rmse,
                    rep.pairs.len()
                )
            }
            Trained::CoupledTransformer { .. } if matches!(&cfg, RunConfig::CoupledTransformer(c) if !c.lengthgen.task.is_addition()) => {
                super::grids::final_report(&mut trained, &cfg, &dir, a.quick)?
            }
            Trained::CoupledTransformer { .. } | Trained::PairGru { .. } => {
                let v = lengths::final_report(&mut trained, &cfg, &dir, a.quick)?;
                whole = whole_domain_long(&dir, a.quick)?;
                match &whole {
                    Some(rep) if e.claim_whole_domain => {
                        e.verdict_whole_domain(rep.n - rep.exact, rep.n)
                    }
                    _ => v,
                }
            }
        };
        if a.results.is_some() {
            let key = if a.quick {
                format!("{} --quick", e.name)
            } else {
                e.name.to_string()
            };
            let row = result_row(e, &trained, loaded.as_ref(), whole.as_ref(), &verdict, secs)?;
            rows.push((key.clone(), format!("| {key} {row} {} |", measured(&dir))));
        }
        if a.quick {
            verdict = format!(
                "{verdict} (quick run on tiny settings: checks it runs, reproduces nothing)"
            );
        }
        println!("Verdict: {verdict}\n");
    }
    if let Some(path) = &a.results {
        write_results(path, &rows)?;
        println!("Results: {}", path.display());
    }
    if rmses.len() > 1 {
        println!("{:<26}{:>10}", "regression experiment", "RMSE");
        for (name, r) in &rmses {
            println!("{name:<26}{r:>10.3}");
        }
    }
    if results.len() > 1 {
        println!(
            "{:<26}{:>8}{:>12}{:>12}{:>10}",
            "experiment", "epoch", "val exact", "val char", "val loss"
        );
        for (name, best) in &results {
            if let Some(b) = best {
                println!(
                    "{name:<26}{:>8}{:>12.4}{:>12.4}{:>10.4}",
                    b.epoch, b.val_exact, b.val_char_acc, b.val_loss
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `experiment run compare-decoders`: the runs (resumable, both cores), then the report.
fn run_compare_decoders(a: &ExperimentRunArgs) -> Result<()> {
    if !a.flags.given().is_empty() {
        bail!(
            "{} runs fixed configs; it takes no config flags",
            seqcalc::compare::NAME
        );
    }
    use seqcalc::{compare, sweep};
    let jobs = compare::jobs(a.quick)?;
    let name = if a.quick {
        format!("{}-quick", compare::NAME)
    } else {
        compare::NAME.to_string()
    };
    let dir = a.runs_dir.join(&name);
    let eval_n = if a.quick { 100 } else { 2000 };
    let spec = sweep::Spec {
        axes: vec![sweep::Axis {
            key: "job".into(),
            paths: Vec::new(),
            values: jobs.iter().map(|j| j.id.clone()).collect(),
        }],
        seeds: 1,
        eval_n,
        target: 0.99,
        base: ExperimentConfig::default(),
    };
    sweep::prepare(&spec, &dir)?;
    let parallel = seqcalc::parallel::default_threads().max(1);
    let executor = a.ray.executor(None)?;
    let where_ = match &a.ray.ray {
        None => format!("{parallel} at a time"),
        Some(address) => format!("on the Ray cluster at {address}"),
    };
    println!(
        "=== {name}: {} runs, {where_} with 1 thread each, in {}",
        jobs.len(),
        dir.display()
    );
    let opts = sweep::Options {
        dir: dir.clone(),
        parallel,
        threads: 1,
        eval_n,
        target: 0.99,
    };
    let results = sweep::run_on(
        &executor,
        &jobs,
        &opts,
        &signals::STOP,
        &mut |r, done, total| {
            let what = match (&r.error, r.fresh_exact) {
                (Some(e), _) => format!("FAILED: {e}"),
                (None, Some(x)) => format!(
                    "fresh exact {x:.4}, {} epochs, {:.0} s",
                    r.epochs, r.seconds
                ),
                (None, None) => "no score".into(),
            };
            println!("[{done}/{total}] {}: {what}", r.id);
        },
    )?;
    let out = a.report_dir.clone().unwrap_or_else(|| dir.join("report"));
    compare::write_report(&dir, &out, &jobs, &results, eval_n, parallel)?;
    println!("Report: {}", out.join("report.md").display());
    if signals::stopped() {
        bail!(
            "interrupted after {} of {} runs (the report covers those); rerun the same command to continue",
            results.len(),
            jobs.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_rows_are_replaced_by_experiment_and_the_rest_kept() {
        let row = |k: &str, x: &str| (k.to_string(), format!("| {k} | seq2seq | {x} |"));
        let first = results_table("", &[row("a", "1"), row("b", "2")]);
        assert!(first.starts_with(RESULTS_HEAD), "{first}");
        let second = results_table(&first, &[row("b", "3"), row("c", "4")]);
        let body: Vec<&str> = second[RESULTS_HEAD.len()..].lines().collect();
        assert_eq!(
            body,
            [
                "| a | seq2seq | 1 |",
                "| b | seq2seq | 3 |",
                "| c | seq2seq | 4 |"
            ]
        );
        // A table written again with nothing new is the same table.
        assert_eq!(results_table(&second, &[]), second);
    }

    #[test]
    fn results_go_between_the_markers_and_nowhere_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page.md");
        let page = format!("# Title\nprose\n{RESULTS_BEGIN}\nold\n{RESULTS_END}\nmore\n");
        std::fs::write(&path, &page).unwrap();
        let new = [("x".to_string(), "| x | y |".to_string())];
        write_results(&path, &new).unwrap();
        let got = std::fs::read_to_string(&path).unwrap();
        let want = format!(
            "# Title\nprose\n{RESULTS_BEGIN}\n{RESULTS_HEAD}| x | y |\n{RESULTS_END}\nmore\n"
        );
        assert_eq!(got, want);
        // A page without markers is a results table of its own; a new file is made.
        let fresh = dir.path().join("new.md");
        write_results(&fresh, &new).unwrap();
        assert_eq!(
            std::fs::read_to_string(&fresh).unwrap(),
            format!("{RESULTS_HEAD}| x | y |\n")
        );
    }

    #[test]
    fn results_markers_out_of_order_are_not_markers() {
        assert!(split_results("no markers\n").is_none());
        assert!(split_results(&format!("{RESULTS_END}\n{RESULTS_BEGIN}\n")).is_none());
        assert!(split_results(&format!("{RESULTS_BEGIN}\n")).is_none());
        // Quoted in the text, not on a line of its own: not a marker.
        let quoted = format!("see `{RESULTS_BEGIN}`\n{RESULTS_BEGIN}\nx\n{RESULTS_END}\n");
        assert_eq!(split_results(&quoted).unwrap().1, "x\n");
        let first = format!("{RESULTS_BEGIN}\nx\n{RESULTS_END}\n");
        assert_eq!(
            split_results(&first),
            Some(("<!-- results:begin -->\n", "x\n", "<!-- results:end -->\n"))
        );
    }
}
