//! Convolutional dictionaries: `m` filters of `fh x fw`, loaded from `.npy` arrays of shape (h, w, M).

use crate::error::{Error, Result};
use crate::formats::npy;
use std::path::{Path, PathBuf};

/// Largest filter side and filter count accepted from a file (the published ones are 8x8x32).
pub const MAX_FILTER_SIDE: usize = 256;
pub const MAX_FILTERS: usize = 4096;
/// Filter norms further than this from 1 are normalised (with a warning).
pub const NORM_TOLERANCE: f64 = 1e-3;
/// Filter norms beyond this factor from 1 are refused.
pub const NORM_REFUSE: f64 = 1e3;

#[derive(Clone, Debug, PartialEq)]
pub struct Dictionary {
    pub fh: usize,
    pub fw: usize,
    pub m: usize,
    /// Filter-major, each filter row-major: `data[k * fh * fw + y * fw + x]`.
    pub data: Vec<f64>,
    /// Where it was loaded from (for reports and error messages).
    pub source: PathBuf,
}

impl Dictionary {
    pub fn filter(&self, k: usize) -> &[f64] {
        let n = self.fh * self.fw;
        &self.data[k * n..(k + 1) * n]
    }

    /// Load and validate a dictionary `.npy` of shape (h, w, M), float32 or float64, for CS-MCA:
    /// filters near unit norm are normalised, others refused (see `check_norms`).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_as_given(path)?.check_norms()
    }

    /// Build from a C-order (h, w, M) array for CS-MCA, checking shape, values and norms.
    pub fn from_hwm(shape: &[usize], hwm: &[f64], path: &Path) -> Result<Self> {
        Self::from_hwm_as_given(shape, hwm, path)?.check_norms()
    }

    /// Load a dictionary `.npy` with its filters as they are (shape and values checked), as
    /// SPORCO's `ConvBPDN` codes against them: `sparse-code` uses this.
    pub fn load_as_given(path: &Path) -> Result<Self> {
        let arr = npy::read(path)?;
        Self::from_hwm_as_given(&arr.shape, &arr.data, path)
    }

    /// Every filter scaled to unit l2 norm (`sparse-code --normalize`).
    pub fn normalized(mut self) -> Self {
        let n = self.fh * self.fw;
        for (k, norm) in self.norms().into_iter().enumerate() {
            self.data[k * n..(k + 1) * n]
                .iter_mut()
                .for_each(|v| *v /= norm);
        }
        self
    }

    /// Build from a C-order (h, w, M) array, checking its shape and that every value is finite
    /// and no filter is all zeros; the norms are left as they are.
    pub fn from_hwm_as_given(shape: &[usize], hwm: &[f64], path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::BadDictionary {
            path: path.to_path_buf(),
            msg,
        };
        let [fh, fw, m] = shape else {
            return Err(bad(format!(
                "dictionary must have shape (h, w, M), this array has shape {shape:?}"
            )));
        };
        let (fh, fw, m) = (*fh, *fw, *m);
        if fh == 0 || fw == 0 || m == 0 {
            return Err(bad(format!("dictionary shape ({fh}, {fw}, {m}) is empty")));
        }
        let count = fh.checked_mul(fw).and_then(|n| n.checked_mul(m));
        if count != Some(hwm.len()) {
            return Err(bad(format!(
                "dictionary shape ({fh}, {fw}, {m}) does not match its {} values",
                hwm.len()
            )));
        }
        if fh > MAX_FILTER_SIDE || fw > MAX_FILTER_SIDE || m > MAX_FILTERS {
            return Err(bad(format!(
                "dictionary shape ({fh}, {fw}, {m}) is too large (at most {MAX_FILTER_SIDE}x\
                 {MAX_FILTER_SIDE} filters, {MAX_FILTERS} of them)"
            )));
        }
        if let Some(i) = hwm.iter().position(|v| !v.is_finite()) {
            let (p, k) = (i / m, i % m);
            return Err(bad(format!(
                "filter {k} has a non-finite value ({}) at row {}, column {}",
                hwm[i],
                p / fw,
                p % fw
            )));
        }
        let mut data = vec![0.0; fh * fw * m];
        for p in 0..fh * fw {
            for k in 0..m {
                data[k * fh * fw + p] = hwm[p * m + k];
            }
        }
        let dict = Dictionary {
            fh,
            fw,
            m,
            data,
            source: path.to_path_buf(),
        };
        if let Some(k) = (0..m).find(|&k| dict.filter(k).iter().all(|v| *v == 0.0)) {
            return Err(bad(format!("filter {k} is all zeros")));
        }
        Ok(dict)
    }

    /// l2 norm of each filter.
    pub fn norms(&self) -> Vec<f64> {
        (0..self.m)
            .map(|k| self.filter(k).iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect()
    }

    /// CS-MCA assumes unit-norm filters (the lambdas are tuned for them): a filter whose norm is far
    /// off (outside [1/NORM_REFUSE, NORM_REFUSE]) makes the solver diverge or stop on all-zero maps,
    /// so it is refused; a small deviation (over NORM_TOLERANCE) is normalised with a warning.
    fn check_norms(self) -> Result<Self> {
        let norms = self.norms();
        if let Some((k, n)) = norms
            .iter()
            .enumerate()
            .find(|(_, n)| !(n.is_finite() && **n >= 1.0 / NORM_REFUSE && **n <= NORM_REFUSE))
        {
            return Err(Error::BadDictionary {
                path: self.source.clone(),
                msg: format!(
                    "filter {k} has l2 norm {n:.3e}; CS-MCA needs unit-norm filters (norms \
                     between {:.0e} and {NORM_REFUSE:.0e} are normalised, others refused)",
                    1.0 / NORM_REFUSE
                ),
            });
        }
        let worst = norms.iter().map(|n| (n - 1.0).abs()).fold(0.0, f64::max);
        if worst > NORM_TOLERANCE {
            log::warn!(
                "{}: filter norms range from {:.4} to {:.4}; normalising them to 1 as CS-MCA assumes",
                self.source.display(),
                norms.iter().copied().fold(f64::INFINITY, f64::min),
                norms.iter().copied().fold(0.0, f64::max)
            );
            return Ok(self.normalized());
        }
        Ok(self)
    }

    /// The (h, w, M) C-order layout for writing `.npy`.
    pub fn to_hwm(&self) -> Vec<f64> {
        let n = self.fh * self.fw;
        let mut out = vec![0.0; n * self.m];
        for k in 0..self.m {
            for p in 0..n {
                out[p * self.m + k] = self.data[k * n + p];
            }
        }
        out
    }

    /// Refuse images smaller than a filter (the circular convolution would wrap a filter onto itself).
    pub fn check_fits(&self, h: usize, w: usize) -> Result<()> {
        if h < self.fh || w < self.fw {
            return Err(Error::BadDictionary {
                path: self.source.clone(),
                msg: format!(
                    "filters are {}x{} but the image is only {w}x{h}",
                    self.fw, self.fh
                ),
            });
        }
        Ok(())
    }
}
