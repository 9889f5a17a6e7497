//! The big numbers of model sizing written for people: `6.738B`, `134,515,008`,
//! `12.60 GiB`, `3.20 days`. One home, so `fmlab inspect`'s tables, the training summaries,
//! the speedrun's report and the server's logs write a size the same way (reading them —
//! `7B`, `500kB` — is `fmlab_scaling::parse_number` and `parse_byte_size`).

/// `134.5M`, `6.738B`, `1.400T`: four significant digits at most, with a suffix (K, M, B,
/// T); below 1000 three decimals; from 10¹⁵ scientific notation.
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

/// `12.60 GiB` (binary units, two decimals; whole bytes below 1 KiB).
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

/// `3.20 days`, `41.0 min`, `5.00 s`.
pub fn duration(seconds: f64) -> String {
    const DAY: f64 = 86_400.0;
    if seconds >= DAY * 365.0 {
        format!("{:.2} years", seconds / (DAY * 365.0))
    } else if seconds >= DAY {
        format!("{:.2} days", seconds / DAY)
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
    fn formats() {
        assert_eq!(si(134_515_008.0), "134.5M");
        assert_eq!(si(6.738e9), "6.738B");
        assert_eq!(si(1.4e12), "1.400T");
        assert_eq!(grouped(134_515_008), "134,515,008");
        assert_eq!(grouped(12), "12");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(duration(90.0), "1.5 min");
        assert_eq!(duration(3.0 * 86_400.0), "3.00 days");
    }
}
