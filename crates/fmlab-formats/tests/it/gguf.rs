use fmlab_formats::{Error, GgmlType, Gguf, GgufWriter, Value, ValueType};

/// A small valid file with every metadata value type and tensors of three ggml types.
pub fn sample() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("u8", Value::U8(7))
        .metadata("i8", Value::I8(-7))
        .metadata("u16", Value::U16(700))
        .metadata("i16", Value::I16(-700))
        .metadata("u32", Value::U32(70_000))
        .metadata("i32", Value::I32(-70_000))
        .metadata("f32", Value::F32(0.5))
        .metadata("bool", Value::Bool(true))
        .metadata("u64", Value::U64(1 << 40))
        .metadata("i64", Value::I64(-(1 << 40)))
        .metadata("f64", Value::F64(-0.25))
        .metadata("tokenizer.ggml.tokens", Value::strings(&["<s>", "a", "b"]))
        .metadata(
            "nested",
            Value::Array(
                ValueType::Array,
                vec![Value::Array(ValueType::U8, vec![Value::U8(1)])],
            ),
        )
        .metadata("llama.embedding_length", Value::U32(64))
        .metadata("llama.block_count", Value::U32(1))
        .metadata("llama.attention.head_count", Value::U32(4))
        .metadata("llama.attention.head_count_kv", Value::U32(2))
        .metadata("llama.feed_forward_length", Value::U32(128))
        .metadata("llama.context_length", Value::U32(256));
    w.tensor("f32", &[4, 2], GgmlType::F32, (0..32).collect())
        .unwrap();
    w.tensor("q8", &[32, 1], GgmlType::Q8_0, vec![9; 34])
        .unwrap();
    w.tensor("q4k", &[256], GgmlType::Q4_K, vec![3; 144])
        .unwrap();
    w.to_bytes()
}

#[test]
fn round_trip_of_every_value_type() {
    let bytes = sample();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 32);
    assert_eq!(g.data_offset % 32, 0);
    let check = |key: &str, v: Value| assert_eq!(g.get(key), Some(&v), "{key}");
    check("u8", Value::U8(7));
    check("i8", Value::I8(-7));
    check("u16", Value::U16(700));
    check("i16", Value::I16(-700));
    check("u32", Value::U32(70_000));
    check("i32", Value::I32(-70_000));
    check("f32", Value::F32(0.5));
    check("bool", Value::Bool(true));
    check("u64", Value::U64(1 << 40));
    check("i64", Value::I64(-(1 << 40)));
    check("f64", Value::F64(-0.25));
    check("tokenizer.ggml.tokens", Value::strings(&["<s>", "a", "b"]));
    assert_eq!(
        g.get("nested")
            .and_then(Value::as_array)
            .map(<[Value]>::len),
        Some(1)
    );
    let q4k = g.tensor("q4k").unwrap();
    assert_eq!((q4k.n_elements, q4k.n_bytes), (256, 144));
    let q8 = g.tensor("q8").unwrap();
    assert_eq!((q8.n_elements, q8.n_bytes, q8.offset % 32), (32, 34, 0));
    // Tensor data lands where the infos say.
    let f32_tensor = g.tensor("f32").unwrap();
    let start = (g.data_offset + f32_tensor.offset) as usize;
    assert_eq!(&bytes[start..start + 32], &(0..32).collect::<Vec<u8>>()[..]);
    let start = (g.data_offset + q8.offset) as usize;
    assert_eq!(&bytes[start..start + 34], &[9; 34]);
    assert_eq!(g.total_elements(), 8 + 32 + 256);
}

#[test]
fn custom_alignment() {
    let mut w = GgufWriter::new();
    w.metadata("general.alignment", Value::U32(64));
    w.tensor("a", &[3], GgmlType::F32, vec![1; 12]).unwrap();
    w.tensor("b", &[5], GgmlType::F16, vec![2; 10]).unwrap();
    let g = Gguf::parse(&w.to_bytes()).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.tensor("b").unwrap().offset, 64);
}

#[test]
fn block_sizes_of_every_type() {
    // (type, elements per block, bytes per block) as in ggml's type traits.
    let table = [
        (GgmlType::F32, 1, 4),
        (GgmlType::F16, 1, 2),
        (GgmlType::BF16, 1, 2),
        (GgmlType::Q4_0, 32, 18),
        (GgmlType::Q4_1, 32, 20),
        (GgmlType::Q5_0, 32, 22),
        (GgmlType::Q5_1, 32, 24),
        (GgmlType::Q8_0, 32, 34),
        (GgmlType::Q8_1, 32, 36),
        (GgmlType::Q2_K, 256, 84),
        (GgmlType::Q3_K, 256, 110),
        (GgmlType::Q4_K, 256, 144),
        (GgmlType::Q5_K, 256, 176),
        (GgmlType::Q6_K, 256, 210),
        (GgmlType::Q8_K, 256, 292),
        (GgmlType::IQ2_XXS, 256, 66),
        (GgmlType::IQ2_XS, 256, 74),
        (GgmlType::IQ3_XXS, 256, 98),
        (GgmlType::IQ1_S, 256, 50),
        (GgmlType::IQ4_NL, 32, 18),
        (GgmlType::IQ3_S, 256, 110),
        (GgmlType::IQ2_S, 256, 82),
        (GgmlType::IQ4_XS, 256, 136),
        (GgmlType::I8, 1, 1),
        (GgmlType::I16, 1, 2),
        (GgmlType::I32, 1, 4),
        (GgmlType::I64, 1, 8),
        (GgmlType::F64, 1, 8),
        (GgmlType::IQ1_M, 256, 56),
        (GgmlType::TQ1_0, 256, 54),
        (GgmlType::TQ2_0, 256, 66),
        (GgmlType::MXFP4, 32, 17),
    ];
    for (t, elements, bytes) in table {
        assert_eq!(t.block(), (elements, bytes), "{t:?}");
        assert_eq!(GgmlType::from_id(t.id()), Some(t));
    }
    assert_eq!(GgmlType::Q4_K.name(), "q4_K");
    assert_eq!(GgmlType::Q8_0.name(), "q8_0");
    assert_eq!(GgmlType::Q4_K.bits_per_weight(), 4.5);
    // Retired numbers are unknown, not misread.
    assert_eq!(GgmlType::from_id(4), None);
    assert_eq!(GgmlType::from_id(31), None);
}

fn expect_err(bytes: &[u8], needle: &str) {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("parsed a broken file; expected an error naming {needle:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(needle),
                "{message:?} should contain {needle:?}"
            );
        }
    }
}

/// Byte position of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn hostile_headers_give_named_errors() {
    let good = sample();
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    expect_err(b"", "magic");
    expect_err(b"GGML\x03\0\0\0", "not a GGUF file");
    expect_err(&patched(4, &1u32.to_le_bytes()), "version 1");
    expect_err(&patched(4, &3u32.to_be_bytes()), "big-endian");
    expect_err(&patched(8, &u64::MAX.to_le_bytes()), "tensor count");
    expect_err(&patched(16, &(1u64 << 50).to_le_bytes()), "metadata count");
    // The first key's length claims more bytes than the file has.
    expect_err(&patched(24, &(1u64 << 62).to_le_bytes()), "metadata key");
    // An unknown value type on the first key ("general.architecture").
    let type_at = 24 + 8 + "general.architecture".len();
    expect_err(
        &patched(type_at, &99u32.to_le_bytes()),
        "unknown value type 99",
    );
    // An array whose count exceeds the file.
    let tokens = find(&good, b"tokenizer.ggml.tokens") + 21 + 4 + 4;
    expect_err(
        &patched(tokens, &(1u64 << 40).to_le_bytes()),
        "array \"tokenizer.ggml.tokens\"",
    );
    // A bool that is neither 0 nor 1.
    let b = find(&good, b"bool") + 4 + 4;
    expect_err(&patched(b, &[2]), "boolean");
    // Tensor infos: unknown type, overflowing shape, offset past the end, bad row length.
    let q8 = find(&good, b"q8\x02\0\0\0") + 2; // n_dims
    expect_err(
        &patched(q8 + 4 + 16, &77u32.to_le_bytes()),
        "unknown ggml type 77",
    );
    expect_err(&patched(q8 + 4, &(1u64 << 62).to_le_bytes()), "q8");
    expect_err(&patched(q8 + 4, &u64::MAX.to_le_bytes()), "exceeds 2^63");
    expect_err(&patched(q8 + 4, &33u64.to_le_bytes()), "block size");
    expect_err(
        &patched(q8 + 4 + 16 + 4, &(1u64 << 40).to_le_bytes()),
        "run past the end",
    );
    expect_err(&patched(q8 + 4 + 16 + 4, &33u64.to_le_bytes()), "alignment");
    expect_err(&patched(q8, &9u32.to_le_bytes()), "9 dimensions");
}

#[test]
fn every_truncation_is_an_error() {
    let good = sample();
    let g = Gguf::parse(&good).unwrap();
    let data_end = g
        .tensors
        .iter()
        .map(|t| g.data_offset + t.offset + t.n_bytes)
        .max()
        .unwrap();
    assert!(
        data_end < good.len() as u64,
        "the sample should end with padding"
    );
    for len in 0..good.len() {
        // Cutting the trailing padding after the last tensor is harmless; any cut into
        // the header or into tensor bytes is not.
        let result = Gguf::parse(&good[..len]);
        assert_eq!(
            result.is_ok(),
            len as u64 >= data_end,
            "a file cut to {len} bytes"
        );
    }
}

#[test]
fn duplicates_and_bad_alignment() {
    let mut w = GgufWriter::new();
    w.metadata("a", Value::U8(1)).metadata("a", Value::U8(2));
    expect_err(&w.to_bytes(), "appears twice");
    let mut w = GgufWriter::new();
    w.tensor("t", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    w.tensor("t", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    expect_err(&w.to_bytes(), "tensor \"t\" appears twice");
    let mut w = GgufWriter::new();
    w.metadata("general.alignment", Value::U32(3));
    expect_err(&w.to_bytes(), "power of two");
    let mut w = GgufWriter::new();
    w.metadata("general.alignment", Value::String("x".into()));
    expect_err(&w.to_bytes(), "general.alignment");
}

#[test]
fn spec_from_crafted_metadata() {
    let g = Gguf::parse(&sample()).unwrap();
    let spec = fmlab_formats::spec_from_gguf(&g).unwrap();
    assert_eq!(
        (spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim),
        (64, 4, 2, 16)
    );
    // Without a vocab_size key the vocabulary is the token list.
    assert_eq!(spec.vocab_size, 3);
    assert!(
        spec.tied_embeddings,
        "no output.weight tensor means a tied head"
    );
}

#[test]
fn unsupported_architecture_is_named() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("mamba".into()));
    let g = Gguf::parse(&w.to_bytes()).unwrap();
    let err = fmlab_formats::spec_from_gguf(&g).unwrap_err().to_string();
    assert!(err.contains("mamba") && err.contains("gemma3"), "{err}");
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()));
    let g = Gguf::parse(&w.to_bytes()).unwrap();
    let err = fmlab_formats::spec_from_gguf(&g).unwrap_err();
    assert!(
        matches!(err, Error::MissingKey(ref k) if k == "llama.embedding_length"),
        "{err}"
    );
}

/// The streaming writer writes the same bytes as the in-memory one, leaves nothing behind
/// when a tensor's size is wrong or a tensor is missing, and replaces an existing file only
/// on `finish`.
#[test]
fn stream_writer_matches_the_in_memory_writer() {
    use fmlab_formats::{GgufStreamWriter, TensorHeader};
    let file = Gguf::parse(&sample()).unwrap();
    let bytes = sample();
    let data = |t: &fmlab_formats::TensorInfo| {
        let start = (file.data_offset + t.offset) as usize;
        bytes[start..start + t.n_bytes as usize].to_vec()
    };
    let headers: Vec<TensorHeader> = file
        .tensors
        .iter()
        .map(|t| TensorHeader {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ggml_type: t.ggml_type,
            n_bytes: t.n_bytes,
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("fmlab-stream-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.gguf");
    std::fs::write(&path, b"old").unwrap();

    let mut w =
        GgufStreamWriter::create(&path, &file.metadata, headers.clone(), file.alignment).unwrap();
    for t in &file.tensors {
        w.write_tensor(&data(t)).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"old",
        "replaced before finish"
    );
    w.finish().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // A short tensor is refused; an unfinished writer leaves the old file and no temporary.
    std::fs::write(&path, b"old").unwrap();
    let mut w =
        GgufStreamWriter::create(&path, &file.metadata, headers.clone(), file.alignment).unwrap();
    let first = data(&file.tensors[0]);
    assert!(w.write_tensor(&first[1..]).is_err());
    assert!(w.finish().is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1, "temporary file left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}
