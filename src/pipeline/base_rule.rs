//! How the two base layers of a pair become one in the `pyramid` mode.
//!
//! The published method averages the base layers, which halves the contrast of any large
//! structure only one source shows: bright CT bone or a hot PET region comes out grey. Taking the
//! larger structure outright (a pixel-wise maximum) keeps it but flattens the detail layers laid on
//! top of it, which costs edge and contrast transfer. The rule here goes part of the way: a
//! Laplacian pyramid of the two bases keeps the larger-magnitude structure at every scale and moves
//! the coarsest level towards the brighter source; the fused base is a fixed share of that pyramid
//! fusion plus the rest of the average. The share and the pull of the coarsest level are
//! [`BaseRule`]'s `share` and `top`: `fuse`'s `--base-share` and `--base-top`, whose defaults were
//! chosen by cross-validation over the development pairs (docs/method.md#choosing-the-rules).
//!
//! A third number, `bright`, moves the result towards a brightness-weighted base: where one base is
//! clearly brighter than the other (by [`BRIGHT_RAMP`] or more, as CT bone over MR, or MR over a CT
//! that ends above the skull base) that base is taken whole, and where the two are about equally
//! bright they are averaged. It keeps one source's large bright structures at their own level
//! without a pixel-wise maximum's halos, because the weight ramps over a range of brightness.

use crate::error::{Error, Result};
use crate::pipeline::baselines::pyramid_fusion;
use crate::plane::Plane;
use serde::Serialize;

/// Pyramid levels (fewer for small images, so that the coarsest level keeps 8 pixels a side).
const LEVELS: usize = 5;

/// Brightness difference of the two bases (on the [0, 1] scale) over which the brightness-weighted
/// base goes from the average to the brighter base alone.
pub const BRIGHT_RAMP: f64 = 0.2;

/// The pyramid mode's base rule: `share * pyramid + (1 - share) * average`, the pyramid's coarsest
/// level moved `top` of the way from the average towards the brighter source, then moved `bright`
/// of the way towards the brightness-weighted base.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BaseRule {
    /// The pyramid fusion's share of the fused base (0: the average, as the published method; 1:
    /// the pyramid alone).
    pub share: f64,
    /// How far the coarsest pyramid level moves from the average towards the brighter source (0:
    /// the average; 1: the brighter one).
    pub top: f64,
    /// How far the fused base moves towards the brightness-weighted base (0: not at all; 1: the
    /// brightness-weighted base alone).
    pub bright: f64,
}

impl Default for BaseRule {
    fn default() -> Self {
        BaseRule {
            share: 0.2,
            top: 0.6,
            bright: 0.25,
        }
    }
}

impl BaseRule {
    /// Every number must lie in [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("share (--base-share, base_share)", self.share),
            ("top (--base-top, base_top)", self.top),
            ("bright (--base-bright, base_bright)", self.bright),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Param(format!(
                    "the base rule's {name} must be from 0 to 1, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// The fused base layer of one pair (`a` and `b` of one size).
pub(crate) fn fuse_bases(a: &Plane, b: &Plane, rule: &BaseRule) -> Plane {
    let top = |x: f64, y: f64| {
        let avg = 0.5 * (x + y);
        avg + rule.top * (x.max(y) - avg)
    };
    let pyr = pyramid_fusion(a, b, LEVELS, top);
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .zip(&pyr.data)
        .map(|((&x, &y), p)| {
            let f = (1.0 - rule.share) * 0.5 * (x + y) + rule.share * p;
            f + rule.bright * (brightness_weighted(x, y) - f)
        })
        .collect();
    Plane::from_vec(a.h, a.w, data)
}

/// The brightness-weighted base at one pixel: A's weight ramps from 0 to 1 as `x - y` goes from
/// `-BRIGHT_RAMP / 2` to `BRIGHT_RAMP / 2` (equal bases: the average).
fn brightness_weighted(x: f64, y: f64) -> f64 {
    let wa = (0.5 + (x - y) / BRIGHT_RAMP).clamp(0.0, 1.0);
    wa * x + (1.0 - wa) * y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_base_twice_is_itself_at_odd_and_even_sizes() {
        for (h, w) in [(64, 64), (97, 131), (9, 12)] {
            let a = Plane::from_fn(h, w, |y, x| ((x * 5 + y * 11) % 13) as f64 / 13.0);
            for bright in [0.0, 1.0] {
                let rule = BaseRule {
                    bright,
                    ..BaseRule::default()
                };
                let f = fuse_bases(&a, &a, &rule);
                let worst = f.data.iter().zip(&a.data).map(|(p, q)| (p - q).abs());
                assert!(worst.fold(0.0, f64::max) < 1e-12, "{h}x{w}");
            }
        }
    }

    #[test]
    fn the_bright_share_takes_the_clearly_brighter_base_and_averages_equal_ones() {
        let (h, w) = (40, 52);
        // A: 0.9 on the left half, 0.3 on the right; B: 0.3 everywhere but a 0.35 patch.
        let a = Plane::from_fn(h, w, |_, x| if x < w / 2 { 0.9 } else { 0.3 });
        let b = Plane::from_fn(h, w, |y, x| if x > 40 && y > 20 { 0.35 } else { 0.3 });
        let plain = BaseRule {
            bright: 0.0,
            ..BaseRule::default()
        };
        let bright = BaseRule {
            bright: 1.0,
            ..plain
        };
        let f0 = fuse_bases(&a, &b, &plain);
        let f1 = fuse_bases(&a, &b, &bright);
        let at = |p: &Plane, y: usize, x: usize| p.data[y * w + x];
        // Far inside A's bright half the brighter base is kept whole.
        assert!((at(&f1, 20, 5) - 0.9).abs() < 1e-9, "{}", at(&f1, 20, 5));
        assert!(at(&f0, 20, 5) < 0.85);
        // Where the bases differ by 0.05 (a quarter of the ramp) A weighs 0.25.
        assert!((at(&f1, 30, 48) - (0.25 * 0.3 + 0.75 * 0.35)).abs() < 1e-9);
        // A half share lands half way.
        let half = BaseRule {
            bright: 0.5,
            ..plain
        };
        let fh = fuse_bases(&a, &b, &half);
        for i in 0..h * w {
            assert!((fh.data[i] - 0.5 * (f0.data[i] + f1.data[i])).abs() < 1e-12);
        }
        assert!(BaseRule {
            bright: 1.5,
            ..plain
        }
        .validate()
        .is_err());
    }

    #[test]
    fn a_bright_region_of_one_source_stays_brighter_than_the_average() {
        // A: a bright disc (bone) on a dark field; B: a flat mid grey.
        let (h, w) = (96, 80);
        let a = Plane::from_fn(h, w, |y, x| {
            let d = ((y as f64 - 48.0).powi(2) + (x as f64 - 40.0).powi(2)).sqrt();
            if d < 20.0 {
                0.9
            } else {
                0.1
            }
        });
        let b = Plane::from_fn(h, w, |_, _| 0.4);
        let f = fuse_bases(&a, &b, &BaseRule::default());
        let at = |p: &Plane, y: usize, x: usize| p.data[y * w + x];
        let avg = 0.5 * (0.9 + 0.4);
        // Inside the disc the fused base is above the average and below the brighter source.
        assert!(at(&f, 48, 40) > avg + 0.02, "{}", at(&f, 48, 40));
        assert!(at(&f, 48, 40) < 0.9);
        // The disc's edge keeps more contrast than in the average.
        let edge = |p: &Plane| at(p, 48, 57) - at(p, 48, 63);
        assert!(edge(&f) > 0.5 * (0.9 - 0.1) + 0.01, "{}", edge(&f));
        // Two flat bases fuse to a flat base between them.
        let g = fuse_bases(&Plane::from_fn(h, w, |_, _| 0.2), &b, &BaseRule::default());
        assert!(g.data.iter().all(|v| (0.3..0.4).contains(v)));
        assert!(g.data.iter().all(|v| (v - g.data[0]).abs() < 1e-12));
    }
}
