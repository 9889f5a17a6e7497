//! Token ids and chat renderings against llama.cpp's, for both reference models.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fmlab_formats::GgufFile;
use fmlab_testkit::{fixture, ids, model, reference};
use fmlab_tokenizer::{ChatTemplate, Message, StreamDecoder, Tokenizer};

fn check_model(gguf: &str, reference_file: &str) -> (Tokenizer, GgufFile) {
    let file = GgufFile::open(model(gguf)).unwrap();
    let tok = Tokenizer::from_gguf(&file.gguf).unwrap();
    let r = reference(reference_file);
    for (name, expected) in r["tokenize"].as_object().unwrap() {
        let text = fixture(&format!("texts/{name}"));
        let plain = tok.encode(&text, false, false);
        assert_eq!(plain, ids(&expected["plain"]), "{gguf} {name} plain");
        let special = tok.encode(&text, true, true);
        assert_eq!(
            special,
            ids(&expected["with_bos_and_special"]),
            "{gguf} {name} with BOS and special"
        );
        // Decoding gives the text back.
        assert_eq!(
            tok.decode(&plain, false).unwrap(),
            text,
            "{gguf} {name} decode"
        );
        // Streaming decode never emits a broken character and adds up to the same text.
        let mut stream = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &plain {
            streamed.push_str(&stream.push(&tok, id).unwrap());
        }
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, text, "{gguf} {name} stream");
    }
    let template = ChatTemplate::from_gguf(&file.gguf, &tok).unwrap();
    for case in r["generate"].as_array().unwrap() {
        let prompt = &case["prompt"];
        let rendered = case["rendered"].as_str().unwrap();
        let expected = ids(&case["prompt_ids"]);
        match prompt["kind"].as_str().unwrap() {
            "raw" => {
                assert_eq!(prompt["text"].as_str().unwrap(), rendered);
                assert_eq!(
                    tok.encode(rendered, true, false),
                    expected,
                    "{gguf} {rendered:?}"
                );
            }
            _ => {
                let messages: Vec<Message> =
                    serde_json::from_value(prompt["messages"].clone()).unwrap();
                let template = template.as_ref().expect("a chat template");
                let ours = template.render(&messages, true).unwrap();
                assert_eq!(ours, rendered, "{gguf} chat rendering");
                // The one prompt→ids rule (generation, chat evaluation, training data).
                assert_eq!(
                    template.prompt_ids(&tok, &messages).unwrap(),
                    expected,
                    "{gguf} chat ids"
                );
            }
        }
    }
    (tok, file)
}

#[test]
fn smollm2_matches_llama_cpp() {
    let (tok, _) = check_model(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2-135m-instruct-q4_1.json",
    );
    assert_eq!(tok.vocab.bos, Some(1));
    assert!(tok.stop_tokens().contains(&2));
    assert_eq!(tok.piece(2).unwrap(), "<|im_end|>");
    // Control tokens render as nothing unless asked for.
    assert_eq!(tok.decode(&[1, 2], false).unwrap(), "");
    assert_eq!(tok.decode(&[1], true).unwrap(), "<|im_start|>");
}

#[test]
fn gemma3_matches_llama_cpp() {
    let (tok, file) = check_model("gemma-3-270m-q4_k_m.gguf", "gemma-3-270m-q4_k_m.json");
    assert_eq!(tok.vocab.bos, Some(2));
    assert!(tok.stop_tokens().contains(&1));
    // The base model has no template of its own.
    assert!(ChatTemplate::from_gguf(&file.gguf, &tok).unwrap().is_none());
    // A character outside the vocabulary falls back to byte tokens and decodes back.
    let text = "\u{10FFFF}";
    let ids = tok.encode(text, false, false);
    assert_eq!(ids.len(), 4);
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
}

/// The prompt→ids rule on a model whose tokenizer adds a BOS (Gemma 3, `add_bos_token`):
/// Gemma 3 270M has no template, so its raw prompts are rendered by one template that
/// writes `{{ bos_token }}` itself (as Gemma's instruct template does) and one that does
/// not; both must give llama.cpp's ids, one BOS and never two. Text that continues a
/// sequence gets none.
#[test]
fn prompt_ids_keep_one_bos() {
    let file = GgufFile::open(model("gemma-3-270m-q4_k_m.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(&file.gguf).unwrap();
    assert!(tok.vocab.add_bos);
    let bos = tok.piece(tok.vocab.bos.unwrap()).unwrap().to_string();
    let writes_bos =
        ChatTemplate::new("{{ bos_token }}{{ messages[0].content }}", &bos, "").unwrap();
    let plain = ChatTemplate::new("{{ messages[0].content }}", &bos, "").unwrap();
    let r = reference("gemma-3-270m-q4_k_m.json");
    let mut raw = 0;
    for case in r["generate"].as_array().unwrap() {
        if case["prompt"]["kind"] != "raw" {
            continue;
        }
        raw += 1;
        let expected = ids(&case["prompt_ids"]);
        assert_eq!(expected[0], tok.vocab.bos.unwrap());
        let messages = [Message::new("user", case["rendered"].as_str().unwrap())];
        for t in [&writes_bos, &plain] {
            assert_eq!(t.prompt_ids(&tok, &messages).unwrap(), expected);
        }
        let text = case["rendered"].as_str().unwrap();
        assert_eq!(
            fmlab_tokenizer::chat::encode_chat(&tok, text, false),
            expected[1..]
        );
    }
    assert!(raw > 0);
}

#[test]
fn bad_token_ids_are_errors() {
    let file = GgufFile::open(model("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let tok = Tokenizer::from_gguf(&file.gguf).unwrap();
    assert!(tok
        .decode(&[49_152], false)
        .unwrap_err()
        .to_string()
        .contains("49152"));
}

#[test]
fn templates_render_like_transformers() {
    let t = ChatTemplate::new(
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}\n  {{ m.role.upper() }}: {{ m.content.strip() }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
        "<s>",
        "</s>",
    )
    .unwrap();
    let out = t.render(&[Message::new("user", "  hi  ")], true).unwrap();
    // trim_blocks eats the newline after `{% endif %}`; lstrip_blocks leaves the indent of
    // a line that holds an expression.
    assert_eq!(out, "<s>  USER: hi\nA:");
    let err = t
        .render(&[Message::new("system", "x")], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no system"), "{err}");
    assert!(ChatTemplate::new("{% for %}", "", "").is_err());
}

/// A byte-level BPE tokenizer trained and saved by the Python `tokenizers` package
/// (fixtures/tokenizer-json): we load its tokenizer.json and encode as that package did.
#[test]
fn tokenizer_json_encodes_like_the_python_package() {
    let path = fmlab_testkit::root().join("fixtures/tokenizer-json/tokenizer.json");
    let tok = Tokenizer::from_tokenizer_json(&path).unwrap();
    let expected = reference_json("tokenizer-json/expected.json");
    for (name, ids_expected) in expected["encode"].as_object().unwrap() {
        let text = if name == "special" {
            "<|im_start|>user hi<|im_end|>".to_string()
        } else {
            fixture(&format!("texts/{name}"))
        };
        let got = tok.encode(&text, false, true);
        assert_eq!(got, ids(ids_expected), "{name}");
        let mut stream = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &got {
            streamed.push_str(&stream.push(&tok, id).unwrap());
        }
        streamed.push_str(&stream.finish());
        // Decoding gives the text back; a stream renders control tokens as nothing.
        assert_eq!(tok.decode(&got, true).unwrap(), text, "{name} decodes back");
        if !text.contains("<|") {
            assert_eq!(streamed, text, "{name} streams back");
        }
    }
    assert_eq!(tok.piece(1).unwrap(), "<|im_start|>");
    assert!(tok.stop_tokens().contains(&2), "<|im_end|> ends generation");
    let missing = Tokenizer::from_tokenizer_json(std::path::Path::new("/no/such/tokenizer.json"));
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("/no/such/tokenizer.json"));
}

fn reference_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(path)).unwrap()
}

mod train {
    use fmlab_tokenizer::train::DEFAULT_SPECIALS;
    use fmlab_tokenizer::{BpeTrainer, Tokenizer};

    fn texts() -> Vec<String> {
        let mut v: Vec<String> = ["english.txt", "code.txt", "multilingual.txt", "edge.txt"]
            .iter()
            .map(|f| fmlab_testkit::fixture(&format!("texts/{f}")))
            .collect();
        let gpl = fmlab_testkit::shared().join("data/ppl/GPL-3.txt");
        v.push(std::fs::read_to_string(gpl).unwrap());
        v
    }

    /// Trained on the fixture texts and the GPL: Hugging Face's `tokenizers` loading our
    /// tokenizer.json and our own encoder give the same ids, and both round-trip.
    #[test]
    fn trained_tokenizer_round_trips_and_matches_tokenizers() {
        let mut trainer = BpeTrainer::new(2000, &DEFAULT_SPECIALS).unwrap();
        for t in texts() {
            trainer.feed(&t);
        }
        let trained = trainer.train(|_, _| {}).unwrap();
        assert_eq!(trained.vocab_size(), 2000);
        let dir = fmlab_testkit::Scratch::new("tokenizer-train");
        let path = dir.join("tokenizer.json");
        std::fs::write(
            &path,
            serde_json::to_vec(&trained.to_tokenizer_json()).unwrap(),
        )
        .unwrap();
        let hf = Tokenizer::from_tokenizer_json(&path).unwrap();
        let ours = Tokenizer::from_trained(&trained).unwrap();
        // The file reads back into the same vocabulary and merges (what GGUF export uses),
        // and a tokenizer.json of another kind is refused.
        let back =
            fmlab_tokenizer::train::TrainedBpe::from_tokenizer_json(&trained.to_tokenizer_json())
                .unwrap();
        assert_eq!(back.specials, trained.specials);
        assert_eq!(back.tokens, trained.tokens);
        assert_eq!(back.merges, trained.merges);
        let mut other = trained.to_tokenizer_json();
        other["added_tokens"][0]["id"] = serde_json::json!(5);
        assert!(fmlab_tokenizer::train::TrainedBpe::from_tokenizer_json(&other).is_err());
        let mut total = 0usize;
        for text in texts() {
            for chunk in text.split("\n\n") {
                // `tokenizers` always matches added tokens in text: compare with ours
                // parsing special tokens too.
                let a = hf.encode(chunk, false, false);
                let b = ours.encode(chunk, false, true);
                assert_eq!(a, b, "{chunk:?}");
                assert_eq!(hf.decode(&a, true).unwrap(), chunk);
                // Special-looking text as plain text round-trips through our encoder.
                let plain = ours.encode(chunk, false, false);
                assert_eq!(ours.decode(&plain, false).unwrap(), chunk);
                total += a.len();
            }
        }
        assert!(total > 1000);
        // Special tokens are single ids when parsed as such.
        let ids = ours.encode("<|im_start|>user\nhi<|im_end|>", false, true);
        assert_eq!(ids[0], 3);
        assert_eq!(*ids.last().unwrap(), 4);
        // Compression: merges make text shorter than its bytes.
        let english = fmlab_testkit::fixture("texts/english.txt");
        assert!(ours.encode(&english, false, false).len() * 2 < english.len());
    }

    #[test]
    fn bad_training_input() {
        let e = BpeTrainer::new(100, &DEFAULT_SPECIALS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("smaller than the byte alphabet"), "{e}");
        let t = BpeTrainer::new(300, &[]).unwrap();
        let e = t.train(|_, _| {}).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}

/// GPT-2's original file pair (encoder.json, vocab.bpe) loads onto our encoder.
#[test]
fn gpt2_file_pair() {
    let dir = fmlab_testkit::Scratch::new("tokenizer-gpt2");
    // The 256 byte characters (GPT-2's table), "he", "Ġhe" and the end-of-text token.
    let mut encoder = serde_json::Map::new();
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            b as char
        } else {
            let c = char::from_u32(next).unwrap();
            next += 1;
            c
        };
        encoder.insert(c.to_string(), serde_json::json!(encoder.len()));
    }
    for t in ["he", "Ġhe", "<|endoftext|>"] {
        encoder.insert(t.into(), serde_json::json!(encoder.len()));
    }
    std::fs::write(
        dir.join("encoder.json"),
        serde_json::to_vec(&encoder).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("vocab.bpe"), "#version: 0.2\nh e\nĠ he\n").unwrap();
    let tok =
        Tokenizer::from_gpt2_files(&dir.join("encoder.json"), &dir.join("vocab.bpe")).unwrap();
    assert_eq!(tok.encode("he he", false, false), [256, 257]);
    assert_eq!(tok.decode(&[256, 257], false).unwrap(), "he he");
    assert_eq!(tok.vocab.eos, Some(258));
    assert!(Tokenizer::from_gpt2_files(&dir.join("nope.json"), &dir.join("vocab.bpe")).is_err());
}
