//! Scaling laws and the compute planner.
//!
//! - [`ParametricLaw`]: `L(N, D) = E + A/N^α + B/D^β` with Chinchilla's approach-3 constants
//!   ([`CHINCHILLA`]) and the Epoch AI refit ([`EPOCH`]); compute-optimal allocation in closed
//!   form under `C = 6ND`.
//! - [`KaplanLaw`]: Kaplan et al. 2020's power laws and compute-efficient frontier.
//! - [`DataConstrained`]: Muennighoff et al. 2023's effective data and parameters when unique
//!   data runs out.
//! - [`inference_optimal`]: Sardana et al. 2023's least training + inference compute at a target
//!   loss, solved numerically.
//! - [`Hardware`], [`run_cost`], [`mfu`]: time, energy and cost of a run; PaLM's MFU.
//! - [`plan`]: the planner behind `fmlab plan` — which of compute, params and tokens are
//!   given decides what is solved; data-constrained and inference-aware views; a device.
//! - [`parse_number`], [`parse_byte_size`], [`parse_runs`]: `7B`, `1.4T`, `500kB` and a CSV
//!   of runs, from text.
//! - [`fit`]: fitting `L(N, D)` to a user's own runs (Huber loss on log-loss, L-BFGS from a
//!   grid of starts, as Hoffmann et al. did).
//!
//! No I/O: callers bring numbers (or text they read) and get numbers back.

mod fit;
mod hardware;
mod input;
mod laws;
mod optimize;
mod plan;

pub use fit::{fit, FitOptions, FitResult, Run};
pub use hardware::{mfu, run_cost, Hardware, RunCost, HARDWARE};
pub use input::{parse_byte_size, parse_number, parse_runs};
pub use laws::{
    inference_optimal, Allocation, DataConstrained, DataConstrainedPoint, InferenceOptimum,
    KaplanLaw, LawKind, ParametricLaw, CHINCHILLA, DATA_CONSTRAINED, EPOCH, KAPLAN, MUENNIGHOFF,
    MUENNIGHOFF_BASE,
};
pub use plan::{plan, DataConstrainedReport, DeviceRequest, PlanReport, PlanRequest, Solved};

/// Errors: inputs outside the domain of a law, or a fit that cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{name} = {value} is out of range: {expected}")]
    OutOfRange {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
    #[error("target loss {target} is unreachable: the law's floor is {floor} (E + A/N^α with N → ∞ and D → ∞)")]
    Unreachable { target: f64, floor: f64 },
    #[error(
        "run {index}: params {params}, tokens {tokens} and loss {loss} must all be finite and > 0"
    )]
    InvalidRun {
        index: usize,
        params: f64,
        tokens: f64,
        loss: f64,
    },
    #[error("fitting needs at least {needed} runs; got {got}")]
    TooFewRuns { needed: usize, got: usize },
    #[error(
        "unknown hardware {0:?} (known: a100, h100, h200, cpu, or a peak FLOP/s such as 1.5e11)"
    )]
    UnknownHardware(String),
    #[error("--hardware: {0}")]
    HardwareFlag(Box<Error>),
    #[error("{0:?} is not a number (examples: 1e21, 7B, 1.4T, 500M)")]
    NotANumber(String),
    #[error("{0:?}: must be a finite number > 0")]
    NotPositive(String),
    #[error("{0:?} is not a size (examples: 1MB, 500kB, 2GB, 1e6)")]
    NotASize(String),
    #[error("{0}: must be between 1 byte and 10 TB")]
    SizeOutOfRange(String),
    #[error("{0}: empty file (expected a header with params,tokens,loss)")]
    NoRuns(String),
    #[error("{file}: the header has no {name:?} column (found {found:?})")]
    MissingColumn {
        file: String,
        name: &'static str,
        found: Vec<String>,
    },
    #[error("{file}:{line}: missing the {name} column")]
    MissingCell {
        file: String,
        line: usize,
        name: &'static str,
    },
    /// The cell's own error is part of the message, not a `source`.
    #[error("{file}:{line}: {name}: {error}")]
    BadCell {
        file: String,
        line: usize,
        name: &'static str,
        error: Box<Error>,
    },
    #[error("give at most two of --compute, --params (or --preset/--model) and --tokens: the third follows from C = 6ND")]
    OverDetermined,
    #[error(
        "give --compute, --params, --tokens or a model (--preset/--model); see `fmlab plan --help`"
    )]
    NothingToPlan,
    #[error("{0} needs a law of the form E + A/N^α + B/D^β: use --law chinchilla or --law epoch")]
    NeedsParametric(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `value` is a finite number > 0.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::OutOfRange {
            name,
            value,
            expected: "a finite number > 0",
        })
    }
}
