//! Subcommands of the `csfuse` program.

pub mod batch;
pub mod bench;
pub mod devices;
pub mod evaluate;
pub mod fuse;
pub mod learn;
pub mod metrics;
pub mod phantom;
pub mod sparse_code;

pub use csfuse::jobs::report::json_bytes;

/// Parsers for numeric options: every value is checked (finite, in range) before any work, so a
/// NaN or a zero never reaches a solver.
pub mod num {
    fn number(s: &str) -> Result<f64, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("`{s}` is not a finite number")),
        }
    }

    /// A finite number > 0.
    pub fn positive(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!("must be greater than 0, got {v}"))
        }
    }

    /// A finite number >= 0.
    pub fn non_negative(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("must be 0 or more, got {v}"))
        }
    }

    /// A fraction, in [0, 1].
    pub fn fraction(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("must be from 0 to 1, got {v}"))
        }
    }

    /// The over-relaxation parameter, in (0, 2).
    pub fn relax(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        if v > 0.0 && v < 2.0 {
            Ok(v)
        } else {
            Err(format!("must be in (0, 2), got {v}"))
        }
    }

    /// A count of at least 1 and at most `max`.
    pub fn count(s: &str, max: usize) -> Result<usize, String> {
        match s.trim().parse::<usize>() {
            Ok(v) if (1..=max).contains(&v) => Ok(v),
            _ => Err(format!("`{s}` is not a whole number from 1 to {max}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numeric_options_refuse_nan_inf_and_out_of_range() {
        for bad in ["nan", "NaN", "inf", "-inf", "0", "-1", "x", ""] {
            assert!(num::positive(bad).is_err(), "{bad}");
        }
        assert_eq!(num::positive("0.1"), Ok(0.1));
        assert!(num::non_negative("-0.5").is_err() && num::non_negative("nan").is_err());
        assert_eq!(num::non_negative("0"), Ok(0.0));
        assert!(num::relax("2").is_err() && num::relax("0").is_err());
        assert!(num::count("0", 5).is_err() && num::count("6", 5).is_err());
        assert_eq!(num::count("5", 5), Ok(5));
    }
}
