//! The classifier's file: compact, little-endian, checked.
//!
//! ```text
//! magic     8 bytes  "FMLCLS\0\x01" (format 1)
//! header    u64 length, then JSON {options, labels, rows}
//! output    labels × dim f32
//! rows      rows × (u32 bucket, dim f32): the embedding rows that are not zero
//! checksum  u64 FNV-1a of everything before it
//! ```
//! A file that is cut short, altered or of another kind is refused with an error that
//! says which.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Classifier, TrainOptions};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"FMLCLS\0\x01";

#[derive(Serialize, Deserialize)]
struct Header {
    options: TrainOptions,
    labels: Vec<String>,
    rows: usize,
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Classifier {
    /// The model as bytes (see the module doc for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let dim = self.options.dim;
        let rows: Vec<usize> = (0..self.options.buckets)
            .filter(|&r| self.input[r * dim..(r + 1) * dim].iter().any(|&x| x != 0.0))
            .collect();
        let header = Header {
            options: self.options.clone(),
            labels: self.labels.clone(),
            rows: rows.len(),
        };
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(32 + json.len() + rows.len() * (4 + 4 * dim));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        self.output
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        for r in rows {
            out.extend_from_slice(&(r as u32).to_le_bytes());
            self.input[r * dim..(r + 1) * dim]
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Writes the model to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        fmlab_formats::write_atomically(path, &self.to_bytes())
            .map_err(|e| Error::format(path, e.to_string()))
    }

    /// Reads a model written by [`Classifier::save`].
    pub fn load(path: &Path) -> Result<Classifier> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Classifier::from_bytes(&bytes).map_err(|m| Error::format(path, m))
    }

    /// Parses a model; the error says what is wrong with the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Classifier, String> {
        if bytes.len() < 24 || &bytes[..6] != b"FMLCLS" {
            return Err("not an fmlab classifier file (no FMLCLS magic)".into());
        }
        if &bytes[..8] != MAGIC {
            return Err(format!(
                "classifier file format {} is not the one this build reads (1)",
                bytes[7]
            ));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let stored = u64::from_le_bytes(tail.try_into().map_err(|_| "short file")?);
        if checksum(body) != stored {
            return Err("damaged classifier file: checksum mismatch (cut short or altered)".into());
        }
        let mut r = Reader { bytes: body, at: 8 };
        let json_len = r.u64()? as usize;
        let header: Header = serde_json::from_slice(r.take(json_len)?)
            .map_err(|e| format!("damaged classifier header: {e}"))?;
        header
            .options
            .validate()
            .map_err(|e| format!("classifier header: {e}"))?;
        let dim = header.options.dim;
        if header.labels.len() < 2 {
            return Err("classifier header: fewer than two labels".into());
        }
        let output = r.f32s(header.labels.len() * dim)?;
        let mut input = vec![0.0f32; header.options.buckets * dim];
        for _ in 0..header.rows {
            let row = r.u32()? as usize;
            if row >= header.options.buckets {
                return Err(format!("classifier row {row} is past the table's end"));
            }
            input[row * dim..(row + 1) * dim].copy_from_slice(&r.f32s(dim)?);
        }
        if r.at != body.len() {
            return Err(format!(
                "{} unexpected bytes after the rows",
                body.len() - r.at
            ));
        }
        Ok(Classifier {
            options: header.options,
            labels: header.labels,
            input,
            output,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("classifier file cut short at byte {}", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        let b = self.take(n.checked_mul(4).ok_or("size overflow")?)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Classifier {
        let ex: Vec<(String, String)> = (0..20)
            .flat_map(|i| {
                [
                    (format!("a{i} b c"), "x".to_string()),
                    (format!("d{i} e f"), "y".to_string()),
                ]
            })
            .collect();
        let o = TrainOptions {
            buckets: 1024,
            dim: 4,
            ..TrainOptions::default()
        };
        Classifier::train(&ex, &o).expect("train")
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let m = model();
        let bytes = m.to_bytes();
        assert_eq!(Classifier::from_bytes(&bytes).as_ref(), Ok(&m));
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        let err = Classifier::from_bytes(&flipped).err().unwrap_or_default();
        assert!(err.contains("checksum"), "{err}");
        let err = Classifier::from_bytes(&bytes[..bytes.len() - 3])
            .err()
            .unwrap_or_default();
        assert!(err.contains("checksum"), "{err}");
        let err = Classifier::from_bytes(b"PK\x03\x04 not a model at all....").err();
        assert!(err.unwrap_or_default().contains("magic"));
    }

    #[test]
    fn save_and_load_name_the_file() {
        let dir = std::env::temp_dir().join(format!("fmlab-cls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.bin");
        let m = model();
        m.save(&path).expect("save");
        assert_eq!(Classifier::load(&path).expect("load"), m);
        std::fs::write(&path, b"FMLCLS\0\x01garbage garbage garbage").expect("write");
        let err = Classifier::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("m.bin") && err.contains("damaged"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
