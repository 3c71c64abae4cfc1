//! A fused volume as a DICOM series that a PACS or viewer takes: one file per slice, a derived
//! image (ImageType DERIVED\SECONDARY) in a new series, placed by Image Position and Orientation
//! from the volume's affine, 16-bit with Rescale Slope and Intercept.
//!
//! When the first input is a DICOM series, its patient, study and frame of reference are copied,
//! so the fused series files under the same patient and study and lines up with its sources in a
//! viewer; otherwise the series gets an anonymous placeholder patient and a new study and frame.

use super::{open, EXPLICIT_LE};
use crate::error::{Error, Result};
use crate::formats::nifti::{affine, Volume};
use dicom_core::header::Header;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// The single-frame SOP class of each multi-frame (enhanced or legacy converted) CT, MR and PET
/// class; any other multi-frame source gives Secondary Capture.
const SINGLE_FRAME_CLASS: [(&str, &str); 6] = [
    ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2"),
    ("1.2.840.10008.5.1.4.1.1.2.2", "1.2.840.10008.5.1.4.1.1.2"),
    ("1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4"),
    ("1.2.840.10008.5.1.4.1.1.4.4", "1.2.840.10008.5.1.4.1.1.4"),
    ("1.2.840.10008.5.1.4.1.1.130", "1.2.840.10008.5.1.4.1.1.128"),
    (
        "1.2.840.10008.5.1.4.1.1.128.1",
        "1.2.840.10008.5.1.4.1.1.128",
    ),
];

/// What the series says of itself.
pub struct SeriesText {
    /// Series Description (at most 64 characters): names csfuse and the mode.
    pub description: String,
    /// Derivation Description: what was fused, and how.
    pub derivation: String,
}

/// The patient, study and frame-of-reference attributes of the source's first file that the
/// fused series copies, with its SOP class and modality.
const COPIED: [Tag; 17] = [
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::STUDY_ID,
    tags::STUDY_DESCRIPTION,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::FRAME_OF_REFERENCE_UID,
    tags::POSITION_REFERENCE_INDICATOR,
    tags::SOP_CLASS_UID,
    tags::MODALITY,
    tags::SERIES_NUMBER,
];

/// The attributes a fused series takes from `source` (a DICOM series folder's first file, or a
/// multi-frame file);
/// `None` reads as "not DICOM": a placeholder patient and a new study and frame of reference.
pub fn source_attributes(first_file: Option<&Path>) -> Result<Source> {
    // The placeholder, which also fills what a source lacks (all type 1 or 2 in the IODs).
    let placeholder = || -> Vec<InMemElement> {
        vec![
            DataElement::new(tags::PATIENT_NAME, VR::PN, "Anonymous^csfuse"),
            DataElement::new(tags::PATIENT_ID, VR::LO, "CSFUSE-ANONYMOUS"),
            DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, ""),
            DataElement::new(tags::PATIENT_SEX, VR::CS, ""),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, new_uid()),
            DataElement::new(tags::STUDY_DATE, VR::DA, ""),
            DataElement::new(tags::STUDY_TIME, VR::TM, ""),
            DataElement::new(tags::STUDY_ID, VR::SH, ""),
            DataElement::new(tags::ACCESSION_NUMBER, VR::SH, ""),
            DataElement::new(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
            DataElement::new(tags::FRAME_OF_REFERENCE_UID, VR::UI, new_uid()),
            DataElement::new(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, SECONDARY_CAPTURE),
            DataElement::new(tags::MODALITY, VR::CS, "OT"),
        ]
    };
    let Some(path) = first_file else {
        return Ok(Source {
            elements: placeholder(),
            from_first_input: false,
        });
    };
    let obj = open(path, Some(tags::PIXEL_DATA))?;
    let mut out: Vec<InMemElement> = COPIED
        .iter()
        .filter_map(|t| obj.element_opt(*t).ok().flatten().cloned())
        .collect();
    // A series is one file per slice: a multi-frame source's class becomes its single-frame one.
    let frames = super::int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    if frames > 1 {
        let class = super::text(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
        let single = SINGLE_FRAME_CLASS
            .iter()
            .find(|(multi, _)| *multi == class)
            .map_or(SECONDARY_CAPTURE, |(_, one)| one);
        out.retain(|e| e.tag() != tags::SOP_CLASS_UID);
        out.push(DataElement::new(tags::SOP_CLASS_UID, VR::UI, single));
    }
    // A source without a SOP class keeps the placeholder's with its modality, so the two agree.
    let has = |out: &[InMemElement], t: Tag| out.iter().any(|e| e.tag() == t);
    if !has(&out, tags::SOP_CLASS_UID) {
        out.retain(|e| e.tag() != tags::MODALITY);
    }
    for e in placeholder() {
        if !has(&out, e.tag()) {
            out.push(e);
        }
    }
    Ok(Source {
        elements: out,
        from_first_input: true,
    })
}

/// The attributes a fused series takes over, and whether they came from the first input.
pub struct Source {
    elements: Vec<InMemElement>,
    from_first_input: bool,
}

/// A new UID under 2.25 (a UUID's 128 bits as a decimal number): random, as a new series needs.
pub fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
        h.finish() as u128
    };
    format!("2.25.{}", (word() << 64) | word())
}

/// A decimal string as DS holds it (at most 16 characters) that is as close to `v` as they allow.
fn ds_value(v: f64) -> String {
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    let candidates = (0..=15)
        .map(|p| format!("{v:.p$}"))
        .chain((0..=15).map(|p| format!("{v:.p$E}")));
    candidates
        .filter(|s| s.len() <= 16)
        .min_by(|x, y| {
            let err = |s: &str| (s.parse::<f64>().unwrap_or(f64::INFINITY) - v).abs();
            err(x).total_cmp(&err(y))
        })
        .expect("a one-digit exponent form always fits")
}

fn ds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| ds_value(*v))
        .collect::<Vec<_>>()
        .join("\\")
}

/// How values are stored in 16 bits: integer values that fit are stored as they are (slope 1,
/// intercept 0); anything else spans the unsigned range, `value = stored * slope + intercept`,
/// with the slope and intercept as their decimal strings read back, so readers compute the same.
struct Storage {
    signed: bool,
    slope: f64,
    intercept: f64,
}

impl Storage {
    fn of(data: &[f32]) -> Storage {
        let (lo, hi) = data
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v as f64), h.max(*v as f64))
            });
        let integers = data.iter().all(|v| v.fract() == 0.0);
        if integers && lo >= 0.0 && hi <= u16::MAX as f64 {
            return Storage {
                signed: false,
                slope: 1.0,
                intercept: 0.0,
            };
        }
        if integers && lo >= i16::MIN as f64 && hi <= i16::MAX as f64 {
            return Storage {
                signed: true,
                slope: 1.0,
                intercept: 0.0,
            };
        }
        let parse = |v: f64| ds_value(v).parse::<f64>().expect("DS parses");
        let intercept = parse(lo);
        let span = (hi - intercept).max(f64::MIN_POSITIVE);
        // A slope a little over span / 65535, so the largest value still fits after rounding.
        let slope = parse(span / 65535.0 * (1.0 + 1e-9));
        Storage {
            signed: false,
            slope: if slope > 0.0 { slope } else { 1.0 },
            intercept,
        }
    }

    fn stored(&self, v: f32) -> u16 {
        let s = ((v as f64 - self.intercept) / self.slope).round();
        if self.signed {
            (s.clamp(i16::MIN as f64, i16::MAX as f64) as i16) as u16
        } else {
            s.clamp(0.0, u16::MAX as f64) as u16
        }
    }
}

/// A file of the series: its name and bytes.
pub type NamedFile = (String, Vec<u8>);

/// What a written series holds, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeriesRecord {
    pub series_instance_uid: String,
    pub files: usize,
    /// `int16` or `uint16`, and `value = stored * rescale_slope + rescale_intercept`.
    pub stored_as: &'static str,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// Whether the patient, study and frame of reference came from the first input.
    pub copied_from_first_input: bool,
}

/// The files of the fused series: `(file name, bytes)`, one per z slice of `grid` (the fused
/// volume's geometry) holding `data` (x fastest). `source` comes from [`source_attributes`].
pub fn series_files(
    grid: &Volume,
    data: &[f32],
    source: &Source,
    text: &SeriesText,
) -> Result<(Vec<NamedFile>, SeriesRecord)> {
    let (copied, source) = (source.from_first_input, &source.elements[..]);
    let a = affine(&grid.header);
    let [nx, ny, nz] = grid.dims;
    let column = |j: usize| [a[0][j], a[1][j], a[2][j]];
    let length = |c: [f64; 3]| c.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (sx, sy, sz) = (length(column(0)), length(column(1)), length(column(2)));
    // RAS to DICOM's LPS: x and y negated.
    let lps = |c: [f64; 3]| [-c[0], -c[1], c[2]];
    let x_dir = lps(column(0)).map(|v| v / sx);
    let y_dir = lps(column(1)).map(|v| v / sy);
    let z_dir = lps(column(2)).map(|v| v / sz);
    let cross = |p: [f64; 3], q: [f64; 3]| {
        [
            p[1] * q[2] - p[2] * q[1],
            p[2] * q[0] - p[0] * q[2],
            p[0] * q[1] - p[1] * q[0],
        ]
    };
    let dot = |p: [f64; 3], q: [f64; 3]| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
    let normal = cross(x_dir, y_dir);
    if dot(x_dir, y_dir).abs() > 1e-4 || dot(normal, z_dir).abs() < 1.0 - 1e-4 {
        return Err(Error::Param(
            "the fused grid is sheared (its axes are not perpendicular), which a DICOM series \
             (slices stacked along their normal) cannot hold; write NIfTI instead"
                .into(),
        ));
    }
    // A left-handed grid (as series read) is written with its first DICOM row at the last y,
    // so that it reads back as this very array; a right-handed one with the first row at y = 0,
    // which reads back flipped in y, on the same world positions.
    let left_handed = dot(normal, z_dir) < 0.0;
    let col_dir = if left_handed {
        y_dir.map(|v| -v)
    } else {
        y_dir
    };
    let first_y = if left_handed { ny - 1 } else { 0 };
    let storage = Storage::of(data);
    let series_uid = new_uid();
    let series_number = source
        .iter()
        .find(|e| e.tag() == tags::SERIES_NUMBER)
        .and_then(|e| e.to_int::<i64>().ok())
        .map_or(1000, |n| n + 1000);
    let sop_class = source
        .iter()
        .find(|e| e.tag() == tags::SOP_CLASS_UID)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches('\0').trim().to_string())
        .unwrap_or_else(|| SECONDARY_CAPTURE.into());
    let (lo, hi) = (
        storage.intercept,
        storage.intercept + storage.slope * if storage.signed { 32767.0 } else { 65535.0 },
    );
    let plane = nx * ny;
    let files = (0..nz)
        .map(|k| {
            let origin = [0, 1, 2].map(|i| a[i][3] + first_y as f64 * a[i][1] + k as f64 * a[i][2]);
            let values = &data[k * plane..(k + 1) * plane];
            let pixels: Vec<u16> = (0..ny)
                .flat_map(|r| {
                    let y = if left_handed { ny - 1 - r } else { r };
                    values[y * nx..(y + 1) * nx].iter()
                })
                .map(|v| storage.stored(*v))
                .collect();
            let uid = new_uid();
            let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
            let mut elements: Vec<InMemElement> = source
                .iter()
                .filter(|e| e.tag() != tags::SERIES_NUMBER)
                .cloned()
                .collect();
            elements.extend([
                DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, uid.as_str()),
                DataElement::new(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"),
                DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str()),
                DataElement::new(tags::SERIES_NUMBER, VR::IS, series_number.to_string()),
                DataElement::new(tags::SERIES_DESCRIPTION, VR::LO, text.description.as_str()),
                DataElement::new(
                    tags::DERIVATION_DESCRIPTION,
                    VR::ST,
                    text.derivation.as_str(),
                ),
                DataElement::new(tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string()),
                DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&lps(origin))),
                DataElement::new(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    VR::DS,
                    ds(&[x_dir, col_dir].concat()),
                ),
                DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[sy, sx])),
                DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[sz])),
                DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(&[sz])),
                us(tags::SAMPLES_PER_PIXEL, 1),
                DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
                us(tags::ROWS, ny as u16),
                us(tags::COLUMNS, nx as u16),
                us(tags::BITS_ALLOCATED, 16),
                us(tags::BITS_STORED, 16),
                us(tags::HIGH_BIT, 15),
                us(tags::PIXEL_REPRESENTATION, storage.signed as u16),
                DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, ds(&[storage.intercept])),
                DataElement::new(tags::RESCALE_SLOPE, VR::DS, ds(&[storage.slope])),
                DataElement::new(tags::WINDOW_CENTER, VR::DS, ds(&[(lo + hi) / 2.0])),
                DataElement::new(tags::WINDOW_WIDTH, VR::DS, ds(&[(hi - lo).max(1.0)])),
                DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
            ]);
            let file = InMemDicomObject::from_element_iter(elements)
                .with_meta(
                    FileMetaTableBuilder::new()
                        .transfer_syntax(EXPLICIT_LE)
                        .media_storage_sop_class_uid(sop_class.as_str())
                        .media_storage_sop_instance_uid(uid.as_str()),
                )
                .map_err(|e| Error::Param(format!("cannot make the DICOM header: {e}")))?;
            let mut bytes = Vec::new();
            file.write_all(&mut bytes)
                .map_err(|e| Error::Param(format!("cannot encode the DICOM file: {e}")))?;
            Ok((format!("slice_{:04}.dcm", k + 1), bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    let record = SeriesRecord {
        series_instance_uid: series_uid,
        files: files.len(),
        stored_as: if storage.signed { "int16" } else { "uint16" },
        rescale_slope: storage.slope,
        rescale_intercept: storage.intercept,
        copied_from_first_input: copied,
    };
    Ok((files, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters_and_stay_close() {
        for v in [
            0.5,
            -64.25,
            1.0 / 65535.0,
            1234.5678901234567,
            -1e-7,
            3.0e12,
            0.0,
        ] {
            let s = ds_value(v);
            assert!(s.len() <= 16, "{v}: {s}");
            let back: f64 = s.parse().unwrap();
            assert!(
                (back - v).abs() <= 1e-10 * v.abs().max(1e-30) + 1e-300,
                "{v}: {s}"
            );
        }
    }

    #[test]
    fn storage_keeps_integers_and_spans_floats_within_one_step() {
        let s = Storage::of(&[-1000.0, 0.0, 2000.0]);
        assert!(s.signed && s.slope == 1.0 && s.intercept == 0.0);
        assert_eq!(s.stored(-1000.0) as i16, -1000);
        let s = Storage::of(&[0.0, 40000.0]);
        assert!(!s.signed && s.slope == 1.0);
        let data = [-0.25f32, 0.1, 0.33, 1.7];
        let s = Storage::of(&data);
        for v in data {
            let back = s.stored(v) as f64 * s.slope + s.intercept;
            assert!(
                (back - v as f64).abs() <= 0.5 * s.slope + 1e-12,
                "{v}: {back}"
            );
        }
        assert_eq!(s.stored(1.7), u16::MAX);
    }

    #[test]
    fn new_uids_differ_and_are_valid() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        for u in [a, b] {
            assert!(u.len() <= 64 && u.starts_with("2.25."), "{u}");
            assert!(u[5..].chars().all(|c| c.is_ascii_digit()) && !u[5..].starts_with('0'));
        }
    }
}
