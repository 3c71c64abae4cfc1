//! Plain 2-D data containers passed between pipeline stages (row-major, f64 at the interfaces).

/// One grayscale image or image-sized map, row-major, values nominally in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub h: usize,
    pub w: usize,
    pub data: Vec<f64>,
}

impl Plane {
    pub fn zeros(h: usize, w: usize) -> Self {
        Plane {
            h,
            w,
            data: vec![0.0; h * w],
        }
    }

    pub fn from_vec(h: usize, w: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), h * w, "plane data length");
        Plane { h, w, data }
    }

    /// The plane whose value at row `y`, column `x` is `f(y, x)`.
    pub fn from_fn(h: usize, w: usize, f: impl Fn(usize, usize) -> f64) -> Self {
        Plane::from_vec(h, w, (0..h * w).map(|k| f(k / w, k % w)).collect())
    }

    #[inline]
    pub fn at(&self, y: usize, x: usize) -> f64 {
        self.data[y * self.w + x]
    }

    /// Element-wise `self - other`.
    pub fn sub(&self, other: &Plane) -> Plane {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a - b)
            .collect();
        Plane::from_vec(self.h, self.w, data)
    }
}

/// Coefficient maps of a convolutional sparse code: `m` planes of `h x w`, filter-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CoefMaps {
    pub m: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f64>,
}

impl CoefMaps {
    pub fn plane(&self, k: usize) -> &[f64] {
        let n = self.h * self.w;
        &self.data[k * n..(k + 1) * n]
    }

    /// Data in the (H, W, M) C-order layout SPORCO and the `.npy` files use.
    pub fn to_hwm(&self) -> Vec<f64> {
        let n = self.h * self.w;
        let mut out = vec![0.0; n * self.m];
        for k in 0..self.m {
            for (p, v) in self.plane(k).iter().enumerate() {
                out[p * self.m + k] = *v;
            }
        }
        out
    }
}

/// Per-pixel choice of the fusion rule: `true` where source A was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionMap {
    pub h: usize,
    pub w: usize,
    pub from_a: Vec<bool>,
}

impl DecisionMap {
    /// Fraction of pixels taken from source A.
    pub fn fraction_a(&self) -> f64 {
        self.from_a.iter().filter(|b| **b).count() as f64 / self.from_a.len().max(1) as f64
    }
}
