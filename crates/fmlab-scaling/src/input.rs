//! Reading the planner's inputs from text: the big numbers of model sizing (`1e21`, `7B`,
//! `1.4T`), sizes in bytes (`500kB`, `2GiB`) and the runs a law is fitted to (CSV rows of params, tokens and loss). The
//! caller reads the file; this module only parses its text.

use crate::{Error, Result, Run};

/// Parses a positive finite number with an optional SI-style suffix: K (10³), M (10⁶),
/// B or G (10⁹), T (10¹²), P (10¹⁵), case-insensitive; `_` and `,` group digits.
pub fn parse_number(text: &str) -> Result<f64> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != ',')
        .collect();
    let (digits, scale) = match cleaned.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&cleaned[..cleaned.len() - 1], 1e3),
        Some('M') => (&cleaned[..cleaned.len() - 1], 1e6),
        Some('B') | Some('G') => (&cleaned[..cleaned.len() - 1], 1e9),
        Some('T') => (&cleaned[..cleaned.len() - 1], 1e12),
        Some('P') => (&cleaned[..cleaned.len() - 1], 1e15),
        _ => (cleaned.as_str(), 1.0),
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| Error::NotANumber(text.to_string()))?;
    let value = value * scale;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::NotPositive(text.to_string()))
    }
}

/// A size in bytes: `1MB`, `500kB`, `2GB`, `1e6`, `1M` (decimal units; `KiB`, `MiB`, `GiB`
/// binary), between 1 byte and 10 TB.
pub fn parse_byte_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, scale) = [
        ("kib", 1024f64),
        ("mib", 1024f64 * 1024.0),
        ("gib", 1024f64 * 1024.0 * 1024.0),
        ("kb", 1e3),
        ("mb", 1e6),
        ("gb", 1e9),
        ("b", 1.0),
    ]
    .iter()
    .find(|(suffix, _)| lower.ends_with(suffix))
    .map(|&(suffix, scale)| (&t[..t.len() - suffix.len()], scale))
    .unwrap_or((t, 1.0));
    let v = parse_number(digits).map_err(|_| Error::NotASize(text.to_string()))? * scale;
    if (1.0..=1e13).contains(&v) {
        Ok(v as u64)
    } else {
        Err(Error::SizeOutOfRange(text.to_string()))
    }
}

/// Reads `params,tokens,loss` rows (any column order, header required, blank lines and `#`
/// comments skipped; other columns ignored) from the text of a CSV file. `file` names the
/// file in errors, which also give the line.
pub fn parse_runs(text: &str, file: &str) -> Result<Vec<Run>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(Error::NoRuns(file.to_string()));
    };
    let columns: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let find = |name: &'static str| {
        columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::MissingColumn {
                file: file.to_string(),
                name,
                found: columns.clone(),
            })
    };
    let (pi, ti, li) = (find("params")?, find("tokens")?, find("loss")?);
    let mut runs = Vec::new();
    for (index, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize, name: &'static str| -> Result<f64> {
            let at = || (file.to_string(), index + 1, name);
            let text = cells.get(i).ok_or_else(|| {
                let (file, line, name) = at();
                Error::MissingCell { file, line, name }
            })?;
            parse_number(text).map_err(|e| {
                let (file, line, name) = at();
                Error::BadCell {
                    file,
                    line,
                    name,
                    error: Box::new(e),
                }
            })
        };
        runs.push(Run {
            params: cell(pi, "params")?,
            tokens: cell(ti, "tokens")?,
            loss: cell(li, "loss")?,
        });
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        let check = |text: &str, expected: f64| assert_eq!(parse_number(text), Ok(expected));
        check("1e21", 1e21);
        check("7B", 7e9);
        check("7b", 7e9);
        check("1.4T", 1.4e12);
        check("500M", 5e8);
        check("8K", 8e3);
        check("5.76e23", 5.76e23);
        check("1_000_000", 1e6);
        check("2P", 2e15);
        for bad in ["", "abc", "-1", "0", "1e999", "7X", "NaN", "inf"] {
            assert!(parse_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_byte_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_byte_size("500kB"), Ok(500_000));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("1e6"), Ok(1_000_000));
        assert_eq!(parse_byte_size("1M"), Ok(1_000_000));
        assert!(matches!(parse_byte_size("ten MB"), Err(Error::NotASize(_))));
        assert!(matches!(
            parse_byte_size("20TB"),
            Err(Error::SizeOutOfRange(_))
        ));
        assert!(matches!(
            parse_byte_size("0.5"),
            Err(Error::SizeOutOfRange(_))
        ));
    }
}
