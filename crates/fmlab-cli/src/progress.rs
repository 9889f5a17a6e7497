//! What every training command shows and handles while it trains: Ctrl-C turned into a
//! clean checkpoint-and-exit, a progress bar (or a line every ~10 s without a terminal),
//! and the loss curve drawn at the end.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use fmlab_train::metrics::Metrics;
use fmlab_train::Progress;

/// Ctrl-C raises the returned flag (the loop then checkpoints and returns); a second
/// Ctrl-C exits at once.
pub fn install_ctrl_c() -> Result<Arc<AtomicBool>> {
    // One handler per process: later training stages in the same process (the speedrun's,
    // with post-training) share the first one's flag.
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping: writing a checkpoint (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| stop).clone())
}

/// A step bar on a terminal, a line every ~10 s without one (so that logs show progress),
/// validation losses printed unless `quiet`. `stage` names a finetuning stage (pre-training:
/// none, and its figures add MFU).
pub struct Bar {
    bar: indicatif::ProgressBar,
    tty: bool,
    quiet: bool,
    stage: Option<&'static str>,
    last_print: std::time::Instant,
}

impl Bar {
    pub fn new(quiet: bool, stage: Option<&'static str>) -> Self {
        let tty = !quiet && std::io::stderr().is_terminal();
        let bar = if tty {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self {
            bar,
            tty,
            quiet,
            stage,
            last_print: std::time::Instant::now(),
        }
    }

    pub fn on(&mut self, p: Progress) {
        match p {
            Progress::Start { step, total } => {
                self.bar.set_length(total);
                if self.stage.is_none() {
                    self.bar.set_position(step);
                }
            }
            Progress::Step {
                step,
                total,
                loss,
                lr,
                tokens_per_second: tps,
                mfu,
            } => {
                self.bar.set_position(step);
                let mut msg = format!("loss {loss:.4} lr {lr:.2e} {tps:.0} tok/s");
                if let Some(mfu) = mfu {
                    msg += &format!(" MFU {:.1}%", 100.0 * mfu);
                }
                self.bar.set_message(msg);
                if !self.tty && !self.quiet && self.last_print.elapsed().as_secs_f64() > 10.0 {
                    self.last_print = std::time::Instant::now();
                    match self.stage {
                        Some(stage) => eprintln!("{stage} step {step}/{total} loss {loss:.4}"),
                        None => eprintln!("step {step}/{total} loss {loss:.4} {tps:.0} tok/s"),
                    }
                }
            }
            Progress::Eval { step, val_loss } => {
                if !self.quiet {
                    self.bar
                        .println(format!("step {step}: val loss {val_loss:.4}"));
                }
            }
        }
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Draws `run`'s losses and learning rate into `run/loss.png` (nothing without points);
/// returns the path.
pub fn plot(run: &Path, title: &str) -> Result<PathBuf> {
    let path = run.join("loss.png");
    let m: Metrics = fmlab_train::metrics::read(run)?;
    if m.train.is_empty() && m.val.is_empty() {
        return Ok(path);
    }
    crate::plot::PanelPlot {
        title,
        x_label: "step",
        panels: vec![
            (
                "loss (nats/token)",
                vec![("train", m.train.clone()), ("validation", m.val.clone())],
            ),
            (
                "learning rate (×10⁻³)",
                vec![("lr", m.lr.iter().map(|&(s, lr)| (s, lr * 1e3)).collect())],
            ),
        ],
    }
    .write_png(&path)?;
    Ok(path)
}
