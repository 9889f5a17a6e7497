//! Reading the planner's inputs from text: the big numbers of model sizing (`1e21`, `7B`,
//! `1.4T`) and the runs a law is fitted to (CSV rows of params, tokens and loss). The
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
