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
        Err(format!("{text}: must be an integer between 1 and 1e15"))
    }
}

/// A clap value parser for an integer ≥ 0 that fits `T` (`8K` allowed), whose error says
/// "integer" rather than Rust's "invalid digit found in string".
pub fn integer<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let out_of_range = || format!("{text}: must be an integer from 0 to {}", max::<T>());
    let v: f64 = match text.trim() {
        "0" => 0.0,
        t => fmlab_scaling::parse_number(t).map_err(|_| {
            if t.starts_with('-') {
                out_of_range()
            } else {
                format!("{text}: not an integer")
            }
        })?,
    };
    if v.fract() != 0.0 {
        return Err(format!("{text}: must be an integer"));
    }
    if v >= u64::MAX as f64 {
        return Err(out_of_range());
    }
    T::try_from(v as u64).map_err(|_| out_of_range())
}

/// The largest value of `T` (one of the unsigned integer types), for messages.
fn max<T: TryFrom<u64>>() -> u64 {
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if T::try_from(mid).is_ok() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
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
        assert_eq!(integer::<usize>("0"), Ok(0));
        assert_eq!(integer::<u64>("8K"), Ok(8000));
        assert_eq!(integer::<u8>("2"), Ok(2));
        assert_eq!(
            integer::<u8>("300"),
            Err("300: must be an integer from 0 to 255".into())
        );
        assert_eq!(
            integer::<usize>("1.5"),
            Err("1.5: must be an integer".into())
        );
        assert_eq!(integer::<usize>("many"), Err("many: not an integer".into()));
        assert!(integer::<usize>("-1")
            .unwrap_err()
            .contains("integer from 0"));
    }
}
