//! Training data for `learn`: each image's detail layer split by TV into cartoon and texture, the
//! chosen part cut into tiles. The command line and the Python package both learn through this.

use super::tv_split;
use crate::cpu::lowpass::tikhonov_split;
use crate::error::{Error, Result};
use crate::formats::colour;
use crate::formats::image::Raster;
use crate::plane::Plane;
use std::path::Path;

/// Which part of the detail layer a dictionary is learned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Cartoon,
    Texture,
}

/// Refuse learning parameters that cannot make a dictionary.
pub fn check_shape(filters: usize, size: usize, tile: usize, max_tiles: usize) -> Result<()> {
    if filters == 0 || size == 0 || size > tile || max_tiles == 0 {
        return Err(Error::Param(format!(
            "filters ({filters}), size ({size}) and max tiles ({max_tiles}) must be at least 1 \
             and the filter size at most the tile size ({tile})"
        )));
    }
    Ok(())
}

/// An image as `fuse` sees it for decomposition, in [0, 1]: the grey plane, or the luminance Y of
/// a colour one (integers by their full scale, float as stored).
pub fn training_plane(r: &Raster) -> Plane {
    let scale = r.format.max_value();
    let planes: Vec<Plane> = r
        .channels
        .iter()
        .map(|c| Plane::from_vec(r.h, r.w, c.iter().map(|v| v / scale).collect()))
        .collect();
    match <[Plane; 3]>::try_from(planes) {
        Ok(rgb) => {
            let [y, _, _] = colour::split(&rgb);
            y
        }
        Err(mut gray) => gray.remove(0),
    }
}

/// Tiles of `tile` x `tile` of `component` of each image (named by its path in messages), at most
/// `max_tiles` of them spread evenly over all.
pub fn training_tiles(
    images: &[(&Path, Plane)],
    component: Component,
    tile: usize,
    max_tiles: usize,
    tv_weight: f64,
) -> Result<Vec<Plane>> {
    let mut tiles = Vec::new();
    for (path, plane) in images {
        let (_, detail) = tikhonov_split(plane, 60.0, 16);
        let (cartoon, texture) = tv_split::split(&detail, tv_weight);
        let part = match component {
            Component::Cartoon => cartoon,
            Component::Texture => texture,
        };
        let t = super::tiles_of(&part, tile);
        if t.is_empty() {
            return Err(Error::BadImage {
                path: path.to_path_buf(),
                msg: format!("smaller than one {tile}x{tile} training tile"),
            });
        }
        tiles.extend(t);
    }
    if tiles.len() > max_tiles {
        let step = tiles.len() as f64 / max_tiles as f64;
        tiles = (0..max_tiles)
            .map(|i| tiles[(i as f64 * step) as usize].clone())
            .collect();
    }
    Ok(tiles)
}
