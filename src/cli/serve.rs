//! `seqcalc serve`: a local web server over a runs directory: the runs, each run's live
//! curves, a playground and a train form (see `crate::serve`). Ctrl-C stops every training it
//! started with a checkpoint, then the server.

use super::signals;
use crate::serve::{self, App};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// Where run directories are (created if missing); trainings started here go there too.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on. Anything but loopback makes every request need the access token
    /// printed at start.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Trainings at once (default: one per core).
    #[arg(long)]
    pub max_trainings: Option<usize>,
}

pub fn exec(a: ServeArgs) -> Result<ExitCode> {
    signals::cooperate();
    let slots = a
        .max_trainings
        .unwrap_or_else(seqcalc::parallel::default_threads);
    if slots == 0 {
        bail!("--max-trainings must be at least 1");
    }
    let runs_dir = serve::prepare_runs_dir(&a.runs_dir)
        .with_context(|| format!("runs directory {}", a.runs_dir.display()))?;
    let loopback = a.host.is_loopback();
    let app = Arc::new(App {
        runs_dir,
        token: serve::new_token(),
        loopback,
        trainer: serve::trainer::Trainer::new(slots),
        models: serve::play::Models::default(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .context("starting the server's runtime")?;
    let listener = std::net::TcpListener::bind(SocketAddr::new(a.host, a.port))
        .with_context(|| format!("listening on {}:{}", a.host, a.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let shown = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    };
    {
        let mut out = std::io::stdout().lock();
        if loopback {
            writeln!(
                out,
                "seqcalc serve: http://{shown}/  (runs: {}, {slots} training slots)",
                app.runs_dir.display()
            )?;
            writeln!(
                out,
                "access token for scripts (header X-Seqcalc-Token): {}",
                app.token
            )?;
        } else {
            writeln!(
                out,
                "seqcalc serve: http://{shown}/?token={}  (runs: {}, {slots} training slots)",
                app.token,
                app.runs_dir.display()
            )?;
            writeln!(out, "access token (every request needs it): {}", app.token)?;
        }
        writeln!(
            out,
            "Ctrl-C stops it (running trainings are checkpointed first)"
        )?;
        out.flush()?;
    }
    let router = serve::router(app.clone());
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("error: the server stopped: {e}");
            }
        });
        while !signals::stopped() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let names = app.trainer.stop_all();
        if !names.is_empty() {
            println!(
                "Stopping {} training(s) with a checkpoint each: {}",
                names.len(),
                names.join(", ")
            );
        }
        let trainer = app.clone();
        tokio::task::spawn_blocking(move || trainer.trainer.join_all()).await?;
        for n in &names {
            println!(
                "  {n}: checkpointed; resume it here or with: seqcalc train --resume {}",
                app.runs_dir.join(n).display()
            );
        }
        anyhow::Ok(())
    })?;
    rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}
