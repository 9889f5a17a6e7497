//! This machine's peak f32 throughput: what MFU and the planner's CPU hardware divide by.
//!
//! Measured once per CPU model and thread count and then read back from a small cache file,
//! so that runs compare: a figure probed again before every run moves with whatever else
//! the machine is doing, and MFU with it. `FMLAB_PEAK_FLOPS` states the figure instead.

use std::path::PathBuf;
use std::time::Instant;

use crate::{matmul, Threads};

/// Best of a few timed 512×512×512 f32 products on all threads of the current pool (about
/// half a second in all), in FLOP/s.
pub fn measure_peak_flops() -> f64 {
    let n = 512;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let flops = 2.0 * (n * n * n) as f64;
    let mut best = 0.0f64;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < 0.5 {
        let t = Instant::now();
        if matmul(&mut c, &a, &b, n, n, n, Threads(0)).is_err() {
            break;
        }
        best = best.max(flops / t.elapsed().as_secs_f64().max(1e-9));
    }
    best.max(1.0)
}

/// Where a peak figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeakSource {
    /// `FMLAB_PEAK_FLOPS`.
    Stated,
    /// Measured earlier on this CPU with as many threads, read from the cache file.
    Cached,
    /// Measured now (and written to the cache file).
    Measured,
}

/// This machine's peak f32 FLOP/s for the current thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    pub flops: f64,
    pub threads: usize,
    /// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
    pub cpu: String,
    pub source: PeakSource,
}

impl Peak {
    /// `1.23e11 FLOP/s (AMD EPYC …, 2 threads, cached)`.
    pub fn describe(&self) -> String {
        let source = match self.source {
            PeakSource::Stated => "FMLAB_PEAK_FLOPS",
            PeakSource::Cached => "measured earlier",
            PeakSource::Measured => "measured now",
        };
        format!(
            "{:.3e} FLOP/s ({}, {} threads, {source})",
            self.flops, self.cpu, self.threads
        )
    }
}

/// The peak for this CPU and the current pool's thread count: `FMLAB_PEAK_FLOPS` when set,
/// else the cached measurement, else measured now and cached (in
/// `$FMLAB_CACHE_DIR/peak-flops.tsv`, by default `~/.cache/fmlab/`). A cache that cannot
/// be read or written only means measuring again.
pub fn peak_flops() -> Peak {
    let threads = rayon::current_num_threads();
    let cpu = cpu_model();
    if let Some(flops) = std::env::var("FMLAB_PEAK_FLOPS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f > 0.0)
    {
        let source = PeakSource::Stated;
        return Peak {
            flops,
            threads,
            cpu,
            source,
        };
    }
    let key = format!("{cpu}\t{threads}");
    let cached = cache_file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let found = cached.lines().find_map(|line| {
        let (k, v) = line.rsplit_once('\t')?;
        (k == key).then(|| v.parse::<f64>().ok()).flatten()
    });
    if let Some(flops) = found.filter(|f| f.is_finite() && *f > 0.0) {
        let source = PeakSource::Cached;
        return Peak {
            flops,
            threads,
            cpu,
            source,
        };
    }
    let flops = measure_peak_flops();
    store(&key, flops);
    let source = PeakSource::Measured;
    Peak {
        flops,
        threads,
        cpu,
        source,
    }
}

/// The peak, measured again when `achieved` FLOP/s (what a run just did) exceeds it: a
/// cached figure measured while other work shared the cores is too low, and every MFU
/// divided by it too high (a speedrun reported 143%). The larger of the old and the new
/// measurement replaces the cached line. A stated `FMLAB_PEAK_FLOPS` is kept as stated.
pub fn peak_flops_at_least(achieved: f64) -> Peak {
    let peak = peak_flops();
    if peak.source == PeakSource::Stated || achieved.is_nan() || achieved <= peak.flops {
        return peak;
    }
    let flops = measure_peak_flops().max(peak.flops);
    store(&format!("{}\t{}", peak.cpu, peak.threads), flops);
    Peak {
        flops,
        source: PeakSource::Measured,
        ..peak
    }
}

/// Writes `flops` as the cache's line for `key` (CPU and thread count), replacing any
/// earlier one and keeping the other CPUs' lines. A failed write is harmless: the next run
/// measures again.
fn store(key: &str, flops: f64) {
    let Some(file) = cache_file() else {
        return;
    };
    let cached = std::fs::read_to_string(&file).unwrap_or_default();
    let mut text: String = cached
        .lines()
        .filter(|line| line.rsplit_once('\t').is_none_or(|(k, _)| k != key))
        .map(|line| format!("{line}\n"))
        .collect();
    text += &format!("{key}\t{flops}\n");
    let _ = file.parent().map(std::fs::create_dir_all);
    let _ = std::fs::write(&file, text);
}

fn cache_file() -> Option<PathBuf> {
    let dir = match std::env::var_os("FMLAB_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/fmlab"),
    };
    Some(dir.join("peak-flops.tsv"))
}

/// The CPU's model name from `/proc/cpuinfo` (tabs removed: they separate the cache's
/// fields).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().replace('\t', " "))
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second call reads what the first measured; a run faster than the cached figure
    /// has it measured again; a stated figure wins.
    #[test]
    fn peak_is_measured_once_then_cached() {
        let dir = std::env::temp_dir().join(format!("fmlab-peak-{}", std::process::id()));
        // Set before any other test of this binary reads the variables (none does).
        std::env::set_var("FMLAB_CACHE_DIR", &dir);
        std::env::remove_var("FMLAB_PEAK_FLOPS");
        let first = peak_flops();
        assert_eq!(first.source, PeakSource::Measured);
        let second = peak_flops();
        assert_eq!(second.source, PeakSource::Cached);
        assert_eq!(second.flops, first.flops);
        // A run that beat the cached figure has it measured again, and the cache keeps the
        // larger figure: here the cached line is made absurdly low first.
        let file = dir.join("peak-flops.tsv");
        let key = format!("{}\t{}", first.cpu, first.threads);
        std::fs::write(&file, format!("other CPU\t4\t5e9\n{key}\t1000\n")).unwrap();
        assert_eq!(peak_flops().flops, 1000.0);
        assert_eq!(peak_flops_at_least(500.0).flops, 1000.0);
        let again = peak_flops_at_least(2000.0);
        assert_eq!(again.source, PeakSource::Measured);
        assert!(again.flops > 2000.0, "{}", again.flops);
        let cached = peak_flops();
        assert_eq!(
            (cached.flops, cached.source),
            (again.flops, PeakSource::Cached)
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("other CPU\t4\t5e9\n"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        std::env::set_var("FMLAB_PEAK_FLOPS", "2e11");
        let stated = peak_flops();
        assert_eq!((stated.flops, stated.source), (2e11, PeakSource::Stated));
        assert_eq!(peak_flops_at_least(1e12).flops, 2e11);
        std::env::remove_var("FMLAB_PEAK_FLOPS");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
