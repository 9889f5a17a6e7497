use fmlab_formats::{safetensors_bytes, Dtype, SafeTensors};

pub fn sample() -> Vec<u8> {
    let a: Vec<u8> = (0..24).collect();
    let b = vec![7u8; 4];
    safetensors_bytes(
        &[
            ("a.weight", Dtype::F32, &[2, 3], &a),
            ("b", Dtype::BF16, &[2], &b),
        ],
        &[("format", "pt")],
    )
    .unwrap()
}

#[test]
fn round_trip() {
    let bytes = sample();
    let st = SafeTensors::parse(&bytes).unwrap();
    assert_eq!(st.metadata.get("format").map(String::as_str), Some("pt"));
    assert_eq!(st.data_offset % 8, 0);
    let a = st.tensor("a.weight").unwrap();
    assert_eq!(
        (a.dtype, a.shape.clone(), a.n_elements()),
        (Dtype::F32, vec![2, 3], 6)
    );
    let start = (st.data_offset + a.begin) as usize;
    assert_eq!(&bytes[start..start + 24], &(0..24).collect::<Vec<u8>>()[..]);
    assert_eq!(st.total_elements(), 8);
}

fn with_header(json: &str, data: usize) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.resize(out.len() + data, 0);
    out
}

fn expect_err(bytes: &[u8], needle: &str) {
    let message = SafeTensors::parse(bytes)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains(needle),
        "{message:?} should contain {needle:?}"
    );
}

#[test]
fn hostile_files_give_named_errors() {
    expect_err(b"", "header length");
    expect_err(&u64::MAX.to_le_bytes(), "exceeds the limit");
    expect_err(&with_header("{}", 0)[..9], "JSON header");
    expect_err(&with_header("{\"a\": 1}", 0), "safetensors entry \"a\"");
    expect_err(&with_header("[1]", 0), "invalid JSON");
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        ),
        "unknown dtype",
    );
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            4,
        ),
        "needs 8",
    );
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}"#,
            4,
        ),
        "overflows",
    );
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            2,
        ),
        "run past the end",
    );
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
        ),
        "gaps or overlaps",
    );
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        ),
        "gaps or overlaps",
    );
    expect_err(
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            12,
        ),
        "data section has 12",
    );
    expect_err(
        &with_header(r#"{"__metadata__":{"k":1}}"#, 0),
        "__metadata__",
    );
    for len in 0..sample().len() {
        assert!(
            SafeTensors::parse(&sample()[..len]).is_err(),
            "cut to {len}"
        );
    }
}
