//! clap value parsers over `fmlab_scaling::parse_number` and `parse_byte_size`
//! (`1e21`, `7B`, `1.4T`, `500kB` in), the library's formatters under short names, and
//! [`put!`] for building tables one line at a time.

pub use fmlab_spec::units::{bytes, duration, grouped, si};

/// Appends one formatted line to a `String` table (writing to a `String` cannot fail).
macro_rules! put {
    ($s:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($s, $($arg)*);
    }};
}
pub(crate) use put;

/// A clap value parser for positive numbers with suffixes.
pub fn positive(text: &str) -> Result<f64, String> {
    fmlab_scaling::parse_number(text).map_err(|e| e.to_string())
}

/// A clap value parser for a fraction in (0, 1].
pub fn fraction(text: &str) -> Result<f64, String> {
    let v = positive(text)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{text}: must be in (0, 1] (e.g. 0.4 for 40%)"))
    }
}

/// A clap value parser for a count ≥ 1 (suffixes allowed: `8K`).
pub fn count(text: &str) -> Result<u64, String> {
    let v = positive(text)?;
    if v.fract() == 0.0 && (1.0..=1e15).contains(&v) {
        Ok(v as u64)
    } else {
        Err(format!("{text}: must be a whole number between 1 and 1e15"))
    }
}

/// A clap value parser for a size in bytes (`1MB`, `500kB`, `2GiB`, `1e6`).
pub fn byte_size(text: &str) -> Result<u64, String> {
    fmlab_scaling::parse_byte_size(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_check_their_range() {
        assert_eq!(count("8K"), Ok(8000));
        assert!(count("1.5").is_err());
        assert!(fraction("1.5").is_err());
        assert_eq!(fraction("0.4"), Ok(0.4));
        assert_eq!(byte_size("1MB"), Ok(1_000_000));
    }
}
