//! Reading and writing the big numbers of model sizing: clap parsers over
//! `fmlab_scaling::parse_number` (`1e21`, `7B`, `1.4T` in); `7.0B`, `1.40T`, `12.3 GiB` out,
//! one table line at a time with [`put!`].

/// Appends one formatted line to a `String` table (writing to a `String` cannot fail).
macro_rules! put {
    ($s:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($s, $($arg)*);
    }};
}
pub(crate) use put;

/// `fmlab_scaling::parse_number` with its message as the error, as clap wants it.
fn parse_number(text: &str) -> Result<f64, String> {
    fmlab_scaling::parse_number(text).map_err(|e| e.to_string())
}

/// A clap value parser for positive numbers with suffixes.
pub fn positive(text: &str) -> Result<f64, String> {
    parse_number(text)
}

/// A clap value parser for a fraction in (0, 1].
pub fn fraction(text: &str) -> Result<f64, String> {
    let v = parse_number(text)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{text}: must be in (0, 1] (e.g. 0.4 for 40%)"))
    }
}

/// A clap value parser for a count ≥ 1 (suffixes allowed: `8K`).
pub fn count(text: &str) -> Result<u64, String> {
    let v = parse_number(text)?;
    if v.fract() == 0.0 && (1.0..=1e15).contains(&v) {
        Ok(v as u64)
    } else {
        Err(format!("{text}: must be a whole number between 1 and 1e15"))
    }
}

/// A clap value parser for a size in bytes: `1MB`, `500kB`, `2GB`, `1e6`, `1M` (decimal
/// units; `MiB`/`GiB` binary).
pub fn byte_size(text: &str) -> Result<u64, String> {
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
    let v = parse_number(digits)
        .map_err(|_| format!("{text:?} is not a size (examples: 1MB, 500kB, 2GB, 1e6)"))?
        * scale;
    if (1.0..=1e13).contains(&v) {
        Ok(v as u64)
    } else {
        Err(format!("{text}: must be between 1 byte and 10 TB"))
    }
}

/// `134.5M`, `6.74B`, `1.40T`: three significant digits with a suffix.
pub fn si(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1e15 {
        return format!("{value:.3e}");
    } else if abs >= 1e12 {
        (value / 1e12, "T")
    } else if abs >= 1e9 {
        (value / 1e9, "B")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e3 {
        (value / 1e3, "K")
    } else {
        return format!("{value:.3}");
    };
    let decimals = if scaled.abs() >= 100.0 {
        1
    } else if scaled.abs() >= 10.0 {
        2
    } else {
        3
    };
    format!("{scaled:.decimals$}{suffix}")
}

/// `1,234,567`.
pub fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `12.6 GiB`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = value as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// `3.2 days`, `41 min`, `5.0 s`.
pub fn duration(seconds: f64) -> String {
    if seconds >= 86_400.0 * 365.0 {
        format!("{:.2} years", seconds / (86_400.0 * 365.0))
    } else if seconds >= 86_400.0 {
        format!("{:.2} days", seconds / 86_400.0)
    } else if seconds >= 3600.0 {
        format!("{:.2} h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{seconds:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        let check =
            |text: &str, expected: f64| assert_eq!(parse_number(text), Ok(expected), "{text}");
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
        assert_eq!(count("8K"), Ok(8000));
        assert!(count("1.5").is_err());
        assert!(fraction("1.5").is_err());
        assert_eq!(fraction("0.4"), Ok(0.4));
    }

    #[test]
    fn formats() {
        assert_eq!(si(134_515_008.0), "134.5M");
        assert_eq!(si(6.738e9), "6.738B");
        assert_eq!(si(1.4e12), "1.400T");
        assert_eq!(grouped(134_515_008), "134,515,008");
        assert_eq!(grouped(12), "12");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(duration(90.0), "1.5 min");
    }
}
