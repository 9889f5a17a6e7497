//! `fmlab serve`: any model fmlab runs behind an OpenAI-compatible HTTP API, so that the
//! tools people already use — the `openai` client, lm-evaluation-harness, chat UIs — drive
//! it unmodified.
//!
//! - [`engine`]: one thread owns the model and decodes every active sequence together
//!   (continuous batching over [`fmlab_nn::Transformer::forward_batch`]);
//! - [`api`]: the request bodies, their checks, OpenAI's error object;
//! - [`routes`]: the handlers — `/v1/models`, `/v1/completions` (legacy log-probabilities
//!   and `echo`, which lm-evaluation-harness scores with), `/v1/chat/completions`,
//!   vLLM's `/tokenize`, `/detokenize`, `/tokenizer_info`, `/health`, `/metrics` and the
//!   playground at `/`;
//! - [`metrics`]: Prometheus text.
//!
//! axum and tokio carry the HTTP; the engine is fmlab's own.

pub mod api;
pub mod engine;
pub mod metrics;
pub mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fmlab_train::models::Loaded;

pub use routes::router;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    /// 0: any free port.
    pub port: u16,
    /// The model id clients send and `/v1/models` lists.
    pub alias: String,
    /// Sequences decoded together.
    pub parallel: usize,
    /// Tokens of context per sequence.
    pub context: usize,
    /// Every route but `/health` needs `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Requests waiting for a slot before new ones get 429.
    pub max_queue: usize,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Prompt tokens a sequence reads per step.
    pub prefill_chunk: usize,
    /// Threads for the model's kernels (default: one per core).
    pub threads: Option<usize>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            alias: "fmlab".into(),
            parallel: 4,
            context: 4096,
            api_key: None,
            max_queue: 64,
            body_limit: 8 << 20,
            prefill_chunk: 256,
            threads: None,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        addr: String,
        reason: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// Where the server's one line per request goes (method, route, status, tokens, ms): the
/// library never prints, its caller decides.
pub type RequestLog = Arc<dyn Fn(&str) + Send + Sync>;

/// Serves `loaded` until the process is interrupted; `ready` hears the bound address once
/// the server accepts connections, `log` one line per request.
pub fn serve(
    loaded: Loaded,
    config: ServeConfig,
    log: RequestLog,
    ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), Error> {
    if config.parallel == 0 {
        return Err(Error::Config("--parallel must be at least 1".into()));
    }
    if config.context == 0 {
        return Err(Error::Config("--ctx must be at least 1".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let metrics = Arc::new(Mutex::new(metrics::Metrics::default()));
        let state = routes::AppState::new(loaded, &config, metrics, log)?;
        let app = router(state);
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
            .await
            .map_err(|reason| Error::Bind {
                addr: format!("{}:{}", config.host, config.port),
                reason,
            })?;
        let addr = listener.local_addr()?;
        ready(addr);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
