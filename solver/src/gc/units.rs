//! Sizes and durations as `kiln prune` flags take them, and sizes as `kiln du` prints them.

/// Why a size or duration flag value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a size.
    #[error("invalid size {0:?}: expected a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 10GB or 1.5GiB")]
    Size(String),
    /// Not a duration.
    #[error(
        "invalid duration {0:?}: expected numbers with units (s, m, h, d), e.g. 24h, 90m or 1h30m"
    )]
    Duration(String),
}

/// Parses `0`, `512`, `10MB` (10·10⁶), `1.5GiB` (1.5·2³⁰), `100k`: decimal units are powers of
/// 1000, `i` units powers of 1024, case-insensitive, as Docker's `--keep-storage` does.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u64 = int.parse().map_err(|_| bad())?;
    let mut value = int.checked_mul(mult).ok_or_else(bad)?;
    if !frac.is_empty() {
        // Exact decimal fraction: frac / 10^len of mult, rounded down.
        let digits = u32::try_from(frac.len()).map_err(|_| bad())?;
        let scale = 10_u128.checked_pow(digits).ok_or_else(bad)?;
        let f: u128 = frac.parse().map_err(|_| bad())?;
        let part = f * u128::from(mult) / scale;
        value = value
            .checked_add(u64::try_from(part).map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(value)
}

/// Parses `24h`, `90m`, `1h30m`, `45s`, `7d` (Go's duration syntax plus days) into seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, UnitError> {
    let bad = || UnitError::Duration(text.to_string());
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        rest = tail;
    }
    Ok(std::time::Duration::from_secs(total))
}

/// `1.2GB`, `340.5MB`, `12kB`, `0B`: decimal units with up to 4 significant digits, as
/// `docker system df` prints them.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    // At most 4 significant digits.
    let digits = text.split('.').next().map_or(0, str::len);
    let text = if digits >= 4 {
        format!("{value:.0}")
    } else {
        format!("{value:.*}", 4 - digits)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("10mb"), Ok(10_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("3B"), Ok(3));
        for bad in [
            "",
            "MB",
            "-1",
            "1.5.2GB",
            "10XB",
            ".5GB",
            "5.GB",
            "99999999999999TB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "24", "h", "1x", "1.5h", "-1h", "1h 2m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn printed_sizes() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(999), "999B");
        assert_eq!(format_size(1_200_000_000), "1.2GB");
        assert_eq!(format_size(340_500_000), "340.5MB");
        assert_eq!(format_size(12_000), "12kB");
        assert_eq!(format_size(1_234_567), "1.235MB");
    }
}
