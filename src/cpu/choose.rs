//! Choose-max fusion of coefficient maps (docs/method.md, step 3): l1 activity over filters,
//! (2r+1)^2 box sum with zeros outside the image, take source A where its activity is strictly
//! larger; then, optionally, a majority vote that makes each decision agree with most of its
//! neighbours', so that a region of one source's coefficients is not cut by specks of the other's.

use crate::plane::{CoefMaps, DecisionMap};

/// `A(p) = sum_m |X_m(p)|`.
pub fn activity(x: &CoefMaps) -> Vec<f64> {
    let n = x.h * x.w;
    let mut a = vec![0.0; n];
    for k in 0..x.m {
        for (acc, v) in a.iter_mut().zip(x.plane(k)) {
            *acc += v.abs();
        }
    }
    a
}

/// Box sum over a (2r+1)x(2r+1) window, zero outside, via a summed-area table (exact up to rounding).
/// The box *average* of the method differs by a constant factor, which does not change the decision.
pub fn box_sum(a: &[f64], h: usize, w: usize, r: usize) -> Vec<f64> {
    let mut sat = vec![0.0; (h + 1) * (w + 1)];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            row += a[y * w + x];
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            out[y * w + x] =
                sat[y1 * (w + 1) + x1] - sat[y0 * (w + 1) + x1] - sat[y1 * (w + 1) + x0]
                    + sat[y0 * (w + 1) + x0];
        }
    }
    out
}

/// Decision map: source A where its windowed activity is strictly larger (ties go to B), then,
/// when `vote` > 0, the majority of the decisions in the (2 vote + 1)^2 window ([`majority`]).
pub fn decide(a: &CoefMaps, b: &CoefMaps, r: usize, vote: usize) -> DecisionMap {
    let (h, w) = (a.h, a.w);
    let sa = box_sum(&activity(a), h, w, r);
    let sb = box_sum(&activity(b), h, w, r);
    let from_a: Vec<bool> = sa.iter().zip(&sb).map(|(x, y)| x > y).collect();
    DecisionMap {
        h,
        w,
        from_a: if vote > 0 {
            majority(&from_a, h, w, vote)
        } else {
            from_a
        },
    }
}

/// A where more than half of the decisions in the (2k+1)^2 window around a pixel (the part inside
/// the image) chose A; a tie goes to B, as in [`decide`].
pub fn majority(from_a: &[bool], h: usize, w: usize, k: usize) -> Vec<bool> {
    let marks: Vec<f64> = from_a.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    let votes = box_sum(&marks, h, w, k);
    let count = box_sum(&vec![1.0; h * w], h, w, k);
    votes.iter().zip(&count).map(|(a, n)| *a > n - a).collect()
}

/// Fused maps: `X_F,m(p) = X_A,m(p)` where the decision picks A, else `X_B,m(p)`.
pub fn choose(a: &CoefMaps, b: &CoefMaps, d: &DecisionMap) -> CoefMaps {
    let n = a.h * a.w;
    let mut out = b.clone();
    for k in 0..a.m {
        for p in 0..n {
            if d.from_a[p] {
                out.data[k * n + p] = a.data[k * n + p];
            }
        }
    }
    out
}

/// Fused maps that keep both sources: `X_F,m(p) = X_A,m(p) + X_B,m(p)`.
pub fn sum(a: &CoefMaps, b: &CoefMaps) -> CoefMaps {
    let mut out = a.clone();
    out.data.iter_mut().zip(&b.data).for_each(|(x, y)| *x += y);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sum_matches_direct_sum() {
        let (h, w) = (7, 11);
        let a: Vec<f64> = (0..h * w).map(|i| ((i * 31 % 13) as f64) / 13.0).collect();
        for r in [0, 1, 2, 5] {
            let fast = box_sum(&a, h, w, r);
            for y in 0..h as isize {
                for x in 0..w as isize {
                    let mut s = 0.0;
                    for dy in -(r as isize)..=r as isize {
                        for dx in -(r as isize)..=r as isize {
                            let (yy, xx) = (y + dy, x + dx);
                            if yy >= 0 && xx >= 0 && yy < h as isize && xx < w as isize {
                                s += a[(yy * w as isize + xx) as usize];
                            }
                        }
                    }
                    assert!((fast[(y * w as isize + x) as usize] - s).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn the_vote_removes_specks_keeps_regions_and_gives_ties_to_b() {
        // A's region on the left with one speck of B inside it and one of A outside.
        let (h, w) = (9, 12);
        let mut d: Vec<bool> = (0..h * w).map(|i| i % w < 6).collect();
        d[4 * w + 2] = false;
        d[4 * w + 9] = true;
        let v = majority(&d, h, w, 1);
        let want: Vec<bool> = (0..h * w).map(|i| i % w < 6).collect();
        assert_eq!(v, want);
        // A 1x2 image with one vote each: the tie goes to B.
        assert_eq!(majority(&[true, false], 1, 2, 1), vec![false, false]);
        // A vote of radius 0 is the decision itself.
        assert_eq!(majority(&d, h, w, 0), d);
    }

    #[test]
    fn ties_go_to_b_and_choice_copies_all_filters() {
        let mk = |v: f64| CoefMaps {
            m: 2,
            h: 1,
            w: 3,
            data: vec![v, 0.0, -v, 1.0, 1.0, 1.0],
        };
        let (a, b) = (mk(2.0), mk(-2.0));
        let d = decide(&a, &b, 0, 0);
        assert_eq!(d.from_a, vec![false; 3]); // equal |.| everywhere
        let a2 = mk(3.0);
        let d = decide(&a2, &b, 0, 0);
        assert_eq!(d.from_a, vec![true, false, true]);
        let f = choose(&a2, &b, &d);
        assert_eq!(f.data, vec![3.0, 0.0, -3.0, 1.0, 1.0, 1.0]);
    }
}
