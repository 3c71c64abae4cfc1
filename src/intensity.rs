//! The documented intensity rule: how stored samples become the engine's [0, 1] and how the fused
//! [0, 1] result becomes stored samples again.
//!
//! * 8-bit images are scaled by 255 (MATLAB `im2double`, as the published method does).
//! * 16-bit images, float TIFF and NIfTI volumes are mapped linearly from their own [min, max] to
//!   [0, 1] (one range per image or per volume, over all channels), so a 12-bit CT stored in 16 bits
//!   or a volume in Hounsfield units gets the same sparsity weight as an 8-bit image.
//! * Back: when every source was 8-bit, the result is written at the full scale of the output depth
//!   (v * 255, v * 65535, or v for float). Otherwise it goes back to the span of the min-max sources'
//!   ranges (lo + v * (hi - lo), lo/hi the smallest min and largest max), which for integer output
//!   must fit the type (else full scale, with a warning). Integers are rounded and clamped; float
//!   output is not clamped.

/// How one source's stored samples map to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scaling {
    /// Stored value that maps to 0.
    pub lo: f64,
    /// Stored value that maps to 1.
    pub hi: f64,
    /// `true` for the fixed 8-bit scale, `false` for a data range.
    pub full_scale: bool,
}

impl Scaling {
    /// The fixed scale [0, max].
    pub fn full(max: f64) -> Self {
        Scaling {
            lo: 0.0,
            hi: max,
            full_scale: true,
        }
    }

    /// The data's own [min, max] (a constant image maps to 0).
    pub fn min_max(samples: impl Iterator<Item = f64>) -> Self {
        let (lo, hi) = samples.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        Scaling {
            lo,
            hi,
            full_scale: false,
        }
    }

    pub fn to_unit(&self, v: f64) -> f64 {
        let span = self.hi - self.lo;
        if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.0
        }
    }

    pub fn from_unit(&self, u: f64) -> f64 {
        self.lo + u * (self.hi - self.lo)
    }

    /// The stored value of a fused [0, 1] result: integer outputs are clamped to [0, 1] first, so
    /// they stay within the inputs' range; float outputs are not clamped.
    pub fn stored(&self, u: f64, integer: bool) -> f64 {
        self.from_unit(if integer { u.clamp(0.0, 1.0) } else { u })
    }
}

/// Where the fused [0, 1] result goes: `repr` is the output type's representable range (`None` for
/// float). Returns the output scaling (integers are rounded and clamped to `repr` by the writer).
pub fn output_scaling(sources: &[Scaling], repr: Option<(f64, f64)>) -> Scaling {
    let ranged: Vec<&Scaling> = sources.iter().filter(|s| !s.full_scale).collect();
    let full = |max: f64| Scaling {
        lo: 0.0,
        hi: max,
        full_scale: true,
    };
    if ranged.is_empty() {
        return full(repr.map_or(1.0, |r| r.1));
    }
    let lo = ranged.iter().map(|s| s.lo).fold(f64::INFINITY, f64::min);
    let hi = ranged
        .iter()
        .map(|s| s.hi)
        .fold(f64::NEG_INFINITY, f64::max);
    match repr {
        Some((rmin, rmax)) if lo < rmin || hi > rmax => {
            log::warn!(
                "the inputs' range [{lo}, {hi}] does not fit the output type [{rmin}, {rmax}]; \
                 writing at the type's full scale"
            );
            Scaling {
                lo: rmin.max(0.0),
                hi: rmax,
                full_scale: true,
            }
        }
        _ => Scaling {
            lo,
            hi,
            full_scale: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_is_full_scale_and_round_trips() {
        let s = Scaling::full(255.0);
        assert_eq!(s.to_unit(51.0), 0.2);
        let out = output_scaling(&[s, s], Some((0.0, 65535.0)));
        assert_eq!(out.from_unit(1.0), 65535.0);
        assert_eq!(output_scaling(&[s], None).from_unit(0.5), 0.5);
    }

    #[test]
    fn ranged_sources_go_back_to_their_span() {
        let a = Scaling::min_max([100.0, 4095.0].into_iter());
        let b = Scaling::min_max([0.0, 1000.0].into_iter());
        assert!((a.to_unit(4095.0) - 1.0).abs() < 1e-15);
        let out = output_scaling(&[a, b], Some((0.0, 65535.0)));
        assert_eq!((out.lo, out.hi), (0.0, 4095.0));
        // Hounsfield units do not fit u16: full scale instead.
        let ct = Scaling::min_max([-1024.0, 3071.0].into_iter());
        let out = output_scaling(&[ct], Some((0.0, 65535.0)));
        assert_eq!((out.lo, out.hi), (0.0, 65535.0));
        // ...but they fit i16 and float.
        let out = output_scaling(&[ct], Some((-32768.0, 32767.0)));
        assert_eq!((out.lo, out.hi), (-1024.0, 3071.0));
        assert_eq!(output_scaling(&[ct], None).from_unit(0.0), -1024.0);
    }

    #[test]
    fn constant_image_maps_to_zero() {
        let s = Scaling::min_max([7.0, 7.0].into_iter());
        assert_eq!(s.to_unit(7.0), 0.0);
    }
}
