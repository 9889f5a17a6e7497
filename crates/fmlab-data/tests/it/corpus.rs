//! The corpus reader: JSONL documents with their lines, plain text whole or in paragraphs,
//! and errors that name the file and the line.

use std::path::PathBuf;

use fmlab_data::corpus::{Documents, PlainText};
use fmlab_data::Error;

fn texts(files: &[PathBuf], plain: PlainText) -> Vec<(String, Option<usize>)> {
    Documents::new(files, plain)
        .map(|d| d.map(|d| (d.text, d.line)).unwrap())
        .collect()
}

#[test]
fn jsonl_and_plain_text_documents() {
    let dir = super::scratch("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("docs.jsonl");
    std::fs::write(
        &jsonl,
        "{\"text\": \"one\", \"domain\": \"story\", \"id\": 3}\n\n  \n{\"text\": \"two\", \"lang\": \"fr\"}\n",
    )
    .unwrap();
    let plain = dir.join("notes.txt");
    let para = "word ".repeat(1000);
    std::fs::write(&plain, format!("{para}\n\n{para}\nend\n")).unwrap();
    let files = [jsonl.clone(), plain.clone()];

    let docs: Vec<_> = Documents::new(&files, PlainText::Whole)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0].domain.as_deref(), Some("story"));
    assert_eq!(docs[1].lang.as_deref(), Some("fr"));
    assert_eq!(
        texts(&files, PlainText::Whole),
        vec![
            ("one".to_string(), Some(1)),
            ("two".to_string(), Some(4)),
            (format!("{para}\n\n{para}\nend\n"), None),
        ]
    );
    // Paragraphs end at the first blank line after 4 kB and add up to the file.
    let pieces = texts(std::slice::from_ref(&plain), PlainText::Paragraphs);
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[0].0, format!("{para}\n\n"));
    assert_eq!(pieces[1].0, format!("{para}\nend\n"));
    // An empty text file is one empty document read whole, none in paragraphs.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(
        texts(std::slice::from_ref(&empty), PlainText::Whole).len(),
        1
    );
    assert!(texts(std::slice::from_ref(&empty), PlainText::Paragraphs).is_empty());
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = super::scratch("corpus-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\": \"ok\"}\n\n{\"body\": 1}\n{\"text\": \"never read\"}\n",
    )
    .unwrap();
    let mut docs = Documents::new(std::slice::from_ref(&bad), PlainText::Whole);
    assert!(docs.next().unwrap().is_ok());
    let err = docs.next().unwrap().unwrap_err();
    assert!(matches!(err, Error::NotADocument { line: 3, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} line 3: expected an object with a \"text\" field: missing field `text` at line 1 column 11",
            bad.display()
        )
    );
    // The first error ends the stream.
    assert!(docs.next().is_none());

    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0xff, 0xfe]).unwrap();
    let err = Documents::new(std::slice::from_ref(&binary), PlainText::Whole)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not UTF-8 text: stream did not contain valid UTF-8",
            binary.display()
        )
    );
    let missing = dir.join("missing.jsonl");
    let err = Documents::new(std::slice::from_ref(&missing), PlainText::Whole)
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("reading {}: ", missing.display())));
}
