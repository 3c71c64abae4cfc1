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
//! * A constant source (16-bit, float, NIfTI) is mapped with the pair's joint range, so its value
//!   keeps its place relative to the other source instead of becoming 0.
//! * `--intensity-range` replaces min-max: `pA-B` maps the A-th..B-th percentiles to [0, 1] and
//!   `LO:HI` a fixed range, both clipping what lies outside (a metal implant or one hot pixel then
//!   no longer squashes the rest). Min-max warns when its range looks dominated by such outliers.

/// How one source's stored samples map to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scaling {
    /// Stored value that maps to 0.
    pub lo: f64,
    /// Stored value that maps to 1.
    pub hi: f64,
    /// `true` for the fixed 8-bit scale, `false` for a data range.
    pub full_scale: bool,
    /// Values outside [lo, hi] are clipped to it (percentile and fixed ranges).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clip: bool,
}

impl Scaling {
    /// The fixed scale [0, max].
    pub fn full(max: f64) -> Self {
        Scaling {
            lo: 0.0,
            hi: max,
            full_scale: true,
            clip: false,
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
            clip: false,
        }
    }

    /// Whether the range is a single value (a constant source).
    pub fn is_constant(&self) -> bool {
        self.hi - self.lo <= 0.0
    }

    pub fn to_unit(&self, v: f64) -> f64 {
        let span = self.hi - self.lo;
        let u = if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.0
        };
        if self.clip {
            u.clamp(0.0, 1.0)
        } else {
            u
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
    let full = Scaling::full;
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
                clip: false,
            }
        }
        _ => Scaling {
            lo,
            hi,
            full_scale: false,
            clip: false,
        },
    }
}

/// `--intensity-range`: how 16-bit, float and NIfTI sources (and, when given, 8-bit ones) map to
/// [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize)]
pub enum IntensityRange {
    /// Each source's own [min, max]; 8-bit sources by 255.
    #[default]
    MinMax,
    /// The `lo`-th and `hi`-th percentiles of each source, values beyond clipped.
    Percentile { lo: f64, hi: f64 },
    /// A fixed range in stored units for both sources, values beyond clipped.
    Fixed { lo: f64, hi: f64 },
}

impl IntensityRange {
    /// `minmax`, `pA-B` (0 <= A < B <= 100) or `LO:HI` (LO < HI, finite).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "`{s}` is not an intensity range: use minmax, pA-B with 0 <= A < B <= 100 (e.g. \
                 p0.5-99.5), or LO:HI in stored units (e.g. -1000:3000)"
            )
        };
        let num = |v: &str| v.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        if t.eq_ignore_ascii_case("minmax") {
            return Ok(IntensityRange::MinMax);
        }
        if let Some(rest) = t.strip_prefix(['p', 'P']) {
            let (a, b) = rest.split_once('-').ok_or_else(bad)?;
            let (lo, hi) = (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?);
            if !(0.0 <= lo && lo < hi && hi <= 100.0) {
                return Err(bad());
            }
            return Ok(IntensityRange::Percentile { lo, hi });
        }
        let (a, b) = t.split_once(':').ok_or_else(bad)?;
        let (lo, hi) = (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?);
        if lo >= hi {
            return Err(bad());
        }
        Ok(IntensityRange::Fixed { lo, hi })
    }

    /// The scaling of one source's samples; `eight_bit` sources keep the fixed /255 under min-max.
    pub fn scaling(&self, samples: &[f64], eight_bit: bool, name: &str) -> Scaling {
        match *self {
            IntensityRange::MinMax if eight_bit => Scaling::full(255.0),
            IntensityRange::MinMax => {
                let s = Scaling::min_max(samples.iter().copied());
                warn_outliers(samples, &s, name);
                s
            }
            IntensityRange::Percentile { lo, hi } => {
                let (l, h) = percentiles(samples, lo, hi);
                Scaling {
                    lo: l,
                    hi: h,
                    full_scale: false,
                    clip: true,
                }
            }
            IntensityRange::Fixed { lo, hi } => Scaling {
                lo,
                hi,
                full_scale: false,
                clip: true,
            },
        }
    }
}

/// The `lo`-th and `hi`-th percentiles (0 <= lo <= hi <= 100, nearest rank), from one copy of the
/// samples (volumes are large: one copy, two partial selections).
pub fn percentiles(samples: &[f64], lo: f64, hi: f64) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let mut v: Vec<f64> = samples.to_vec();
    let rank = |p: f64| (((p / 100.0) * (v.len() - 1) as f64).round() as usize).min(v.len() - 1);
    let (k_lo, k_hi) = (rank(lo), rank(hi));
    let (_, at_lo, above) = v.select_nth_unstable_by(k_lo, f64::total_cmp);
    let at_lo = *at_lo;
    let at_hi = if k_hi == k_lo {
        at_lo
    } else {
        *above
            .select_nth_unstable_by(k_hi - k_lo - 1, f64::total_cmp)
            .1
    };
    (at_lo, at_hi)
}

/// Warn when 99 % of the samples fill under a tenth of the min-max range: one hot pixel or a metal
/// implant then squashes the rest of the image into a few grey levels.
fn warn_outliers(samples: &[f64], s: &Scaling, name: &str) {
    let span = s.hi - s.lo;
    if span <= 0.0 || samples.len() < 100 {
        return;
    }
    let (p_lo, p_hi) = percentiles(samples, 0.5, 99.5);
    if p_hi - p_lo < 0.1 * span {
        log::warn!(
            "{name}: 99% of the samples lie in [{p_lo}, {p_hi}], under a tenth of the range [{}, {}]; \
             a few outliers dominate the intensity mapping. Consider --intensity-range p0.5-99.5",
            s.lo,
            s.hi
        );
    }
}

/// A constant source gets the joint range of the pair (see the module notes); both ranged.
pub fn pair_scalings(a: Scaling, b: Scaling) -> (Scaling, Scaling) {
    if a.full_scale || b.full_scale {
        return (a, b);
    }
    let joint = Scaling {
        lo: a.lo.min(b.lo),
        hi: a.hi.max(b.hi),
        full_scale: false,
        clip: false,
    };
    let fix = |s: Scaling| {
        if !s.full_scale && !s.clip && s.is_constant() && !joint.is_constant() {
            joint
        } else {
            s
        }
    };
    (fix(a), fix(b))
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
    fn constant_image_alone_maps_to_zero() {
        let s = Scaling::min_max([7.0, 7.0].into_iter());
        assert_eq!(s.to_unit(7.0), 0.0);
    }

    /// Hole 10: a constant source inside the other's range keeps its place in it.
    #[test]
    fn constant_source_takes_the_pairs_joint_range() {
        let c = Scaling::min_max([500.0, 500.0].into_iter());
        let other = Scaling::min_max([0.0, 1000.0].into_iter());
        let (c, o) = pair_scalings(c, other);
        assert_eq!(c.to_unit(500.0), 0.5);
        assert_eq!(o, other);
        let out = output_scaling(&[c, o], None);
        assert_eq!(out.from_unit(0.5), 500.0);
    }

    #[test]
    fn percentiles_match_a_full_sort() {
        let v: Vec<f64> = (0..1001).map(|i| ((i * 7919) % 1001) as f64).collect();
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        for (lo, hi) in [
            (0.0, 100.0),
            (0.5, 99.5),
            (25.0, 75.0),
            (50.0, 50.0),
            (10.0, 10.2),
        ] {
            let rank = |p: f64| ((p / 100.0) * 1000.0).round() as usize;
            assert_eq!(
                percentiles(&v, lo, hi),
                (sorted[rank(lo)], sorted[rank(hi)]),
                "{lo}, {hi}"
            );
        }
    }

    #[test]
    fn intensity_ranges_parse_and_clip() {
        assert_eq!(IntensityRange::parse("minmax"), Ok(IntensityRange::MinMax));
        assert_eq!(
            IntensityRange::parse("p0.5-99.5"),
            Ok(IntensityRange::Percentile { lo: 0.5, hi: 99.5 })
        );
        assert_eq!(
            IntensityRange::parse("-1000:3000"),
            Ok(IntensityRange::Fixed {
                lo: -1000.0,
                hi: 3000.0
            })
        );
        for bad in ["p99-1", "p-1-5", "5:5", "nan:1", "x", "p0.5", "1:inf"] {
            assert!(IntensityRange::parse(bad).is_err(), "{bad}");
        }
        // One hot pixel: min-max squashes, the percentile range does not.
        let mut v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        v[7] = 1e30;
        let mm = IntensityRange::MinMax.scaling(&v, false, "x");
        assert!(mm.to_unit(999.0) < 1e-20);
        let p = IntensityRange::Percentile { lo: 0.5, hi: 99.5 }.scaling(&v, false, "x");
        assert!((p.to_unit(500.0) - 0.5).abs() < 0.02);
        assert_eq!(p.to_unit(1e30), 1.0);
    }
}
