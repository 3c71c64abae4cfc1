//! The project's own dictionaries, learned by `csfuse learn` (`docs/method.md`, "Dictionaries", has the commands),
//! embedded so the binary works from any folder.

use crate::dictionary::Dictionary;
use crate::formats::npy;
use std::path::Path;

const CARTOON: &[u8] = include_bytes!("../assets/dict_cartoon_8x8x32.npy");
const TEXTURE: &[u8] = include_bytes!("../assets/dict_texture_8x8x32.npy");

fn embedded(bytes: &[u8], name: &str) -> Dictionary {
    let path = Path::new(name);
    let arr = npy::parse(bytes).expect("embedded dictionary is valid .npy");
    Dictionary::from_hwm(&arr.shape, &arr.data, path).expect("embedded dictionary is valid")
}

/// Default cartoon dictionary (`assets/dict_cartoon_8x8x32.npy`).
pub fn cartoon() -> Dictionary {
    embedded(CARTOON, "assets/dict_cartoon_8x8x32.npy")
}

/// Default texture dictionary (`assets/dict_texture_8x8x32.npy`).
pub fn texture() -> Dictionary {
    embedded(TEXTURE, "assets/dict_texture_8x8x32.npy")
}
