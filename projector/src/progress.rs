//! How a rebuild shows its progress to the person who started it: a progress bar with rate
//! and ETA on a terminal (indicatif), plain lines otherwise (a log file, CI, `| tee`), at most
//! one every [`LINE_EVERY`] plus one per phase.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::framework::{Phase, Progress};

/// Plain progress lines: at most one this often (phase changes always get one).
pub const LINE_EVERY: Duration = Duration::from_secs(2);

/// Renders [`Progress`] reports on stderr.
pub struct Display {
    inner: Mutex<Inner>,
}

enum Inner {
    Bar(Option<ProgressBar>),
    Lines { last: Option<(Instant, Phase)> },
}

impl Display {
    /// A bar when stderr is a terminal, lines otherwise.
    pub fn for_stderr() -> Display {
        let inner = if std::io::stderr().is_terminal() {
            Inner::Bar(None)
        } else {
            Inner::Lines { last: None }
        };
        Display {
            inner: Mutex::new(inner),
        }
    }

    /// Plain lines, whatever stderr is.
    pub fn lines() -> Display {
        Display {
            inner: Mutex::new(Inner::Lines { last: None }),
        }
    }

    /// Shows `p`.
    pub fn show(&self, p: &Progress) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *inner {
            Inner::Bar(bar) => {
                let bar = bar.get_or_insert_with(|| {
                    let bar = ProgressBar::with_draw_target(
                        Some(p.head.max(0) as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} {msg:<9} [{bar:40}] {pos}/{len} events \
                             {per_sec} ETA {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(p.projection.clone());
                    bar
                });
                bar.set_length(p.head.max(p.position).max(0) as u64);
                bar.set_position(p.position.max(0) as u64);
                bar.set_message(p.phase.as_str());
                if p.phase == Phase::Done {
                    bar.finish_with_message(format!(
                        "done: {} events in {:.1} s ({:.0} events/s)",
                        p.applied,
                        p.elapsed.as_secs_f64(),
                        p.rate()
                    ));
                }
            }
            Inner::Lines { last } => {
                let due = match last {
                    None => true,
                    Some((at, phase)) => *phase != p.phase || at.elapsed() >= LINE_EVERY,
                };
                if due {
                    eprintln!("{}", line(p));
                    *last = Some((Instant::now(), p.phase));
                }
            }
        }
    }
}

/// One plain progress line.
pub fn line(p: &Progress) -> String {
    let eta = if p.phase == Phase::Replay && p.rate() > 0.0 && p.head > p.position {
        format!(
            ", ETA {:.0} s",
            (p.head - p.position) as f64 / p.rate().max(1e-9)
        )
    } else {
        String::new()
    };
    format!(
        "rebuild {}: {} {}/{} ({:.1} %), {:.0} events/s, {:.1} s{eta}",
        p.projection,
        p.phase.as_str(),
        p.position,
        p.head,
        p.fraction() * 100.0,
        p.rate(),
        p.elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_where_the_rebuild_is_how_fast_and_when_it_ends() {
        let p = Progress {
            projection: "read_models".into(),
            phase: Phase::Replay,
            position: 25_000,
            head: 100_000,
            applied: 25_000,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(
            line(&p),
            "rebuild read_models: replay 25000/100000 (25.0 %), 25000 events/s, 1.0 s, ETA 3 s"
        );
        let done = Progress {
            phase: Phase::Done,
            position: 100_000,
            ..p
        };
        assert!(line(&done).starts_with("rebuild read_models: done 100000/100000 (100.0 %)"));
    }
}
