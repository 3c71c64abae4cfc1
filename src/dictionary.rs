//! Convolutional dictionaries: `m` filters of `fh x fw`, loaded from `.npy` arrays of shape (h, w, M).

use crate::error::{Error, Result};
use crate::npy;
use std::path::{Path, PathBuf};

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

    /// Load and validate a dictionary `.npy` of shape (h, w, M), float32 or float64.
    pub fn load(path: &Path) -> Result<Self> {
        let arr = npy::read(path)?;
        Self::from_hwm(&arr.shape, &arr.data, path)
    }

    /// Build from a C-order (h, w, M) array, checking shape and values.
    pub fn from_hwm(shape: &[usize], hwm: &[f64], path: &Path) -> Result<Self> {
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
