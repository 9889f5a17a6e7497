//! The routes against the reference model and llama.cpp's recorded greedy tokens.

use std::time::{Duration, Instant};

use fmlab_nn::{KvCache, Logits};
use serde_json::{json, Value};

use super::{get, post, post_raw, server, sse_events, start};

fn reference() -> Value {
    fmlab_testkit::reference("smollm2-135m-instruct-q4_1.json")
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Token ids from `token_id:N` names.
fn token_ids(logprobs: &Value) -> Vec<u64> {
    logprobs["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_str()
                .and_then(|s| s.strip_prefix("token_id:"))
                .and_then(|n| n.parse().ok())
                .unwrap()
        })
        .collect()
}

/// A greedy completion of token ids, its tokens named by id.
fn greedy(prompt: &[u64], n: usize) -> Value {
    json!({"model": "smollm2", "prompt": prompt, "max_tokens": n, "temperature": 0,
           "logprobs": 0, "return_tokens_as_token_ids": true})
}

#[test]
fn models_health_and_tokenizer_routes() {
    let addr = server();
    let m = get(addr, "/v1/models", &[]).json();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "smollm2");
    assert_eq!(m["data"][0]["object"], "model");
    assert_eq!(get(addr, "/health", &[]).json()["status"], "ok");
    let t = post(
        addr,
        "/tokenize",
        &[],
        &json!({"prompt": "The capital of France is", "add_special_tokens": false}),
    )
    .json();
    let want = &reference()["generate"][0]["prompt_ids"];
    assert_eq!(t["tokens"], *want);
    assert_eq!(t["count"], want.as_array().unwrap().len());
    let d = post(addr, "/detokenize", &[], &json!({"tokens": want})).json();
    assert_eq!(d["prompt"], "The capital of France is");
    let info = get(addr, "/tokenizer_info", &[]).json();
    assert!(info["chat_template"].as_str().unwrap().contains("im_start"));
    let page = get(addr, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
}

/// Greedy tokens equal llama.cpp's on every reference prompt, alone and with all the
/// prompts decoded together in one batch.
#[test]
fn greedy_tokens_are_llama_cpp_s_alone_and_batched() {
    let addr = server();
    let r = reference();
    let cases: Vec<(Vec<u64>, Vec<u64>)> = r["generate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let want = ids(&g["greedy_ids"]);
            (ids(&g["prompt_ids"]), want[..want.len().min(12)].to_vec())
        })
        .collect();
    let alone: Vec<Vec<u64>> = cases
        .iter()
        .map(|(p, want)| {
            let v = post(addr, "/v1/completions", &[], &greedy(p, want.len())).json();
            token_ids(&v["choices"][0]["logprobs"])
        })
        .collect();
    for ((_, want), got) in cases.iter().zip(&alone) {
        // A reply that ends at end-of-generation is shorter than the limit.
        assert_eq!(&want[..got.len()], got.as_slice());
    }
    // All together, twice over (12 concurrent requests, 8 decoded at a time).
    let handles: Vec<_> = cases
        .iter()
        .chain(cases.iter())
        .map(|(p, want)| {
            let body = greedy(p, want.len());
            std::thread::spawn(move || post(addr, "/v1/completions", &[], &body).json())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let v = h.join().unwrap();
        assert_eq!(
            token_ids(&v["choices"][0]["logprobs"]),
            alone[i % cases.len()],
            "request {i}"
        );
    }
}

/// `echo` with `max_tokens: 0` scores a text: the prompt's tokens with their
/// log-probabilities (the first one null), equal to the model's own.
#[test]
fn echo_scores_the_prompt_with_the_model_s_log_probabilities() {
    let addr = server();
    let prompt: Vec<u64> = ids(&reference()["generate"][2]["prompt_ids"]);
    let v = post(
        addr,
        "/v1/completions",
        &[],
        &json!({"prompt": prompt, "max_tokens": 0, "echo": true, "logprobs": 1, "temperature": 0}),
    )
    .json();
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "length");
    assert_eq!(
        c["text"],
        "Once upon a time, in a small village by the sea,"
    );
    let lp = &c["logprobs"];
    let token_logprobs = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(token_logprobs.len(), prompt.len());
    assert!(token_logprobs[0].is_null());
    assert!(lp["top_logprobs"][0].is_null());
    assert_eq!(lp["text_offset"][0], 0);
    assert_eq!(v["usage"]["completion_tokens"], 0);
    // The model's own: log-softmax of the logits after each prefix.
    let path = fmlab_testkit::model(fmlab_testkit::SMOLLM2);
    let loaded = fmlab_train::models::load(path.to_str().unwrap()).unwrap();
    let ids32: Vec<u32> = prompt.iter().map(|&x| x as u32).collect();
    let mut cache = KvCache::new(&loaded.model.spec, ids32.len());
    let logits = loaded
        .model
        .forward(&ids32, &mut cache, Logits::All)
        .unwrap();
    let vocab = loaded.model.spec.vocab_size as usize;
    for (i, row) in logits.chunks_exact(vocab).enumerate().take(ids32.len() - 1) {
        let lse = fmlab_sample::log_sum_exp(row);
        let want = row[ids32[i + 1] as usize] - lse;
        let got = token_logprobs[i + 1].as_f64().unwrap();
        assert!(
            (got - want as f64).abs() < 1e-4,
            "token {}: {got} vs {want}",
            i + 1
        );
        // The top alternative is the best; the greedy check lm-evaluation-harness makes.
        let top = lp["top_logprobs"][i + 1].as_object().unwrap();
        let best = top
            .values()
            .map(|x| x.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(best >= got - 1e-6);
    }
}

#[test]
fn chat_completions_plain_streamed_and_with_logprobs() {
    let addr = server();
    let body = json!({"model": "smollm2", "messages": [{"role": "user", "content": "What is 12 times 7?"}],
                      "temperature": 0, "max_tokens": 10});
    let v = post(addr, "/v1/chat/completions", &[], &body).json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    let text = c["message"]["content"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    // Streamed: role first, deltas that add up to the same text, usage, [DONE].
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = post(addr, "/v1/chat/completions", &[], &streamed);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&r.body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text);
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"].as_array().unwrap().len(), 0);
    assert_eq!(last["usage"], v["usage"]);
    // Chat log-probabilities: token, logprob, bytes, top_logprobs.
    let mut with_lp = body.clone();
    with_lp["logprobs"] = json!(true);
    with_lp["top_logprobs"] = json!(3);
    let v = post(addr, "/v1/chat/completions", &[], &with_lp).json();
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        content.len() as u64,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    let first = &content[0];
    assert!(first["logprob"].as_f64().unwrap() <= 0.0);
    assert_eq!(first["top_logprobs"].as_array().unwrap().len(), 3);
    let bytes: Vec<u8> = first["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        first["token"].as_str().unwrap()
    );
}

#[test]
fn seeds_reproduce_and_choices_differ() {
    let addr = server();
    let body = json!({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.0,
                      "seed": 7, "n": 3});
    let a = post(addr, "/v1/completions", &[], &body).json();
    let b = post(addr, "/v1/completions", &[], &body).json();
    let texts = |v: &Value| -> Vec<String> {
        v["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(texts(&a), texts(&b));
    let t = texts(&a);
    assert_eq!(t.len(), 3);
    assert!(
        t[0] != t[1] || t[1] != t[2],
        "three samples, all equal: {t:?}"
    );
    // Several prompts: choices indexed prompt by prompt.
    let v = post(
        addr,
        "/v1/completions",
        &[],
        &json!({"prompt": ["A", "B"], "max_tokens": 2, "n": 2}),
    )
    .json();
    let idx: Vec<u64> = v["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![0, 1, 2, 3]);
}

#[test]
fn stop_strings_and_structured_output() {
    let addr = server();
    let v = post(
        addr,
        "/v1/completions",
        &[],
        &json!({"prompt": "1, 2, 3, 4,", "max_tokens": 20, "temperature": 0, "stop": [" 7"]}),
    )
    .json();
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "stop");
    assert!(!c["text"].as_str().unwrap().contains(" 7"), "{c}");
    let v = post(
        addr,
        "/v1/chat/completions",
        &[],
        &json!({"messages": [{"role": "user", "content": "Give a person as JSON."}],
                "max_tokens": 60, "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {
                    "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name", "age"], "additionalProperties": false}}}}),
    )
    .json();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        parsed["name"].is_string() && parsed["age"].is_i64(),
        "{parsed}"
    );
}

/// Errors are OpenAI's error object with the right status, naming the field.
#[test]
fn errors_are_openai_error_objects() {
    let addr = server();
    let check = |r: super::Reply, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        let e = r.json();
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        assert!(e["error"]["type"].is_string());
        e
    };
    let raw = |body: &str| {
        post_raw(
            addr,
            format!(
                "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    check(raw("{\"prompt\": "), 400, "not valid JSON");
    let e = check(
        raw(r#"{"prompt": "x", "temperature": "hot"}"#),
        400,
        "temperature",
    );
    assert_eq!(e["error"]["param"], "temperature");
    check(
        post(
            addr,
            "/v1/completions",
            &[],
            &json!({"model": "gpt-9", "prompt": "x"}),
        ),
        404,
        "gpt-9",
    );
    let e = check(
        post(
            addr,
            "/v1/completions",
            &[],
            &json!({"prompt": "x", "max_tokens": 5000}),
        ),
        400,
        "5000",
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("1024"));
    check(
        post(addr, "/v1/completions", &[], &json!({"prompt": [[]]})),
        400,
        "empty",
    );
    check(
        post(addr, "/v1/completions", &[], &json!({"prompt": [999999]})),
        400,
        "vocabulary",
    );
    check(
        post(
            addr,
            "/v1/completions",
            &[],
            &json!({"prompt": "x", "n": 99}),
        ),
        400,
        "n must",
    );
    check(
        post(
            addr,
            "/v1/completions",
            &[],
            &json!({"prompt": "x", "top_p": 7}),
        ),
        400,
        "top",
    );
    check(
        post(
            addr,
            "/v1/completions",
            &[],
            &json!({"prompt": "x", "logit_bias": {"abc": 1}}),
        ),
        400,
        "logit_bias",
    );
    check(
        post(addr, "/v1/chat/completions", &[], &json!({"messages": []})),
        400,
        "empty",
    );
    check(
        post(
            addr,
            "/v1/chat/completions",
            &[],
            &json!({"messages": [{"role": "robot", "content": "x"}]}),
        ),
        400,
        "robot",
    );
    // A grammar the engine cannot compile is the request's fault: 400, not 500.
    let r = post(
        addr,
        "/v1/completions",
        &[],
        &json!({"prompt": "x", "regex": "(unclosed"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    check(get(addr, "/v1/nothing", &[]), 404, "no route");
    check(get(addr, "/v1/completions", &[]), 405, "not allowed");
    let big = "x".repeat(9 << 20);
    check(
        raw(&format!("{{\"prompt\": \"{big}\"}}")),
        413,
        "larger than",
    );
}

#[test]
fn an_api_key_guards_every_route_but_health() {
    let addr = start(fmlab_serve::ServeConfig {
        port: 0,
        alias: "smollm2".into(),
        parallel: 1,
        context: 256,
        api_key: Some("sesame".into()),
        ..Default::default()
    });
    let r = get(addr, "/v1/models", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    assert_eq!(
        get(addr, "/v1/models", &[("Authorization", "Bearer wrong")]).status,
        401
    );
    assert_eq!(
        get(addr, "/v1/models", &[("Authorization", "Bearer sesame")]).status,
        200
    );
    assert_eq!(get(addr, "/health", &[]).status, 200);
}

fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics", &[]).body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// A full queue answers 429 at once; a closed connection's sequence leaves at the next
/// step (`/metrics` counts it and shows no active sequence after).
#[test]
fn a_full_queue_refuses_and_a_closed_connection_cancels() {
    let addr = start(fmlab_serve::ServeConfig {
        port: 0,
        alias: "smollm2".into(),
        parallel: 1,
        context: 2048,
        max_queue: 1,
        ..Default::default()
    });
    let long = json!({"prompt": "Count: 1, 2, 3,", "max_tokens": 1500, "ignore_eos": true, "stream": true});
    // The first request decodes, the second waits in the queue, then the queue is full.
    let mut first = std::net::TcpStream::connect(addr).unwrap();
    let body = long.to_string();
    use std::io::{Read, Write};
    write!(
        first,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = first.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    // The response's headers go out when the request is queued: wait until the engine
    // decodes it, so that the next request waits in the queue rather than being refused.
    let until = |name: &str, at_least: f64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while metric(addr, name) < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            metric(addr, name) >= at_least,
            "{name} never reached {at_least}"
        );
    };
    until("fmlab_active_sequences", 1.0);
    let second = std::thread::spawn(move || post(addr, "/v1/completions", &[], &long));
    until("fmlab_queue_length", 1.0);
    let r = post(
        addr,
        "/v1/completions",
        &[],
        &json!({"prompt": "x", "max_tokens": 1}),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "queue_full");
    // Refused at once: the first request is still decoding, the second still waiting.
    assert_eq!(metric(addr, "fmlab_active_sequences"), 1.0);
    assert_eq!(metric(addr, "fmlab_queue_length"), 1.0);
    // Closing the first connection cancels its sequence; the second then runs.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(addr, "fmlab_cancelled_sequences_total") < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(addr, "fmlab_cancelled_sequences_total"), 1.0);
    drop(second);
}

/// 64 clients streaming at once all get complete streams with the text they get alone.
/// On a server of its own, whose queue holds them all: the shared one also queues the
/// other tests' requests, and a slow machine left 64 + theirs waiting at once (429).
#[test]
fn sixty_four_concurrent_streams_finish_complete_and_correct() {
    let addr = start(fmlab_serve::ServeConfig {
        port: 0,
        alias: "smollm2".into(),
        parallel: 8,
        context: 1024,
        prefill_chunk: 64,
        max_queue: 128,
        ..Default::default()
    });
    let prompts: Vec<String> = (0..8)
        .map(|i| format!("Item {i}: the colour of the sky is"))
        .collect();
    let body = |p: &str, stream: bool| json!({"prompt": p, "max_tokens": 6, "temperature": 0, "stream": stream});
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| {
            post(addr, "/v1/completions", &[], &body(p, false)).json()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let b = body(&prompts[i % 8], true);
            std::thread::spawn(move || post(addr, "/v1/completions", &[], &b))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        let events = sse_events(&r.body);
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "client {i}: status {}, body {:?}",
            r.status,
            r.body
        );
        let text: String = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, alone[i % 8], "client {i}");
    }
}

/// A port already taken is one error naming the address.
#[test]
fn a_port_in_use_is_named() {
    let addr = server();
    let path = fmlab_testkit::model(fmlab_testkit::SMOLLM2);
    let loaded = fmlab_train::models::load(path.to_str().unwrap()).unwrap();
    let config = fmlab_serve::ServeConfig {
        port: addr.port(),
        ..Default::default()
    };
    let err = fmlab_serve::serve(loaded, config, std::sync::Arc::new(|_: &str| {}), |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("cannot listen on 127.0.0.1:{}: ", addr.port())),
        "{err}"
    );
}
