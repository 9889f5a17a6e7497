//! The server driven over real sockets by a small HTTP/1.1 client (so that malformed and
//! cut-off requests can be sent too), on the reference SmolLM2 (Q4_1): wire format,
//! greedy tokens equal to llama.cpp's alone and in a batch, echo scoring equal to the
//! model's own log-probabilities, errors as OpenAI's error object, cancellation, many
//! concurrent streams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod routes;

use std::net::SocketAddr;
use std::sync::OnceLock;

pub use client::{get, post, post_raw, sse_events, Reply};

/// A server over the reference SmolLM2 on a free loopback port, with `config`'s settings.
pub fn start(config: fmlab_serve::ServeConfig) -> SocketAddr {
    let path = fmlab_testkit::model(fmlab_testkit::SMOLLM2);
    let loaded = fmlab_train::models::load(path.to_str().unwrap_or_default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        fmlab_serve::serve(
            loaded,
            config,
            std::sync::Arc::new(|_: &str| {}),
            move |addr| {
                let _ = tx.send(addr);
            },
        )
        .unwrap();
    });
    rx.recv().unwrap()
}

/// The shared server most tests use: 8 sequences at a time, 1024 tokens of context.
pub fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        start(fmlab_serve::ServeConfig {
            port: 0,
            alias: "smollm2".into(),
            parallel: 8,
            context: 1024,
            prefill_chunk: 64,
            ..Default::default()
        })
    })
}
