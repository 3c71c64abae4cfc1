//! The DICOM files of `csfuse phantom --dicom`: a CT-like image, and a CT-like volume as a series
//! (one file per slice) placed so that csfuse and dcm2niix read it back on the volume's own grid.
//! A fused volume is written by [`super::fused`].

use super::EXPLICIT_LE;
use crate::error::{Error, Result};
use crate::formats::nifti::{affine, Volume};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

/// Where a slice lies: Image Position and Orientation (Patient), Pixel Spacing (between rows,
/// between columns) and Slice Thickness, in DICOM's LPS millimetres.
struct Place {
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    thickness: f64,
}

/// One CT slice to encode: signed 16-bit stored values and their Rescale Intercept (slope 1).
struct Slice<'a> {
    h: usize,
    w: usize,
    stored: &'a [i16],
    intercept: f64,
    /// SOP Instance UID, and the series' UID and its Instance Number.
    uid: String,
    series: Option<(String, usize)>,
    place: Option<Place>,
}

/// Decimal strings as DICOM's DS holds them (at most 16 characters each).
fn ds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| {
            let s = format!("{:.6}", v);
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".to_string()
            } else {
                s.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\\")
}

fn encode(s: &Slice) -> Result<Vec<u8>> {
    let (rows, cols) = (
        u16::try_from(s.h)
            .map_err(|_| Error::Param("a DICOM image has at most 65535 rows".into()))?,
        u16::try_from(s.w)
            .map_err(|_| Error::Param("a DICOM image has at most 65535 columns".into()))?,
    );
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let mut elements = vec![
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, s.uid.as_str()),
        DataElement::new(tags::MODALITY, VR::CS, "CT"),
        DataElement::new(tags::SERIES_DESCRIPTION, VR::LO, "csfuse phantom"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 16),
        us(tags::HIGH_BIT, 15),
        us(tags::PIXEL_REPRESENTATION, 1),
        DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, ds(&[s.intercept])),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, "1"),
    ];
    match &s.place {
        Some(p) => elements.extend([
            DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&p.spacing)),
            DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&p.position)),
            DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&p.orientation)),
            DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[p.thickness])),
        ]),
        None => elements.push(DataElement::new(tags::PIXEL_SPACING, VR::DS, "1\\1")),
    }
    if let Some((uid, number)) = &s.series {
        elements.extend([
            DataElement::new(tags::PATIENT_NAME, VR::PN, "Phantom^CT"),
            DataElement::new(tags::PATIENT_ID, VR::LO, "PHANTOM"),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, format!("{uid}.1")),
            DataElement::new(tags::FRAME_OF_REFERENCE_UID, VR::UI, format!("{uid}.2")),
            DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, uid.as_str()),
            DataElement::new(tags::SERIES_NUMBER, VR::IS, "1"),
            DataElement::new(tags::INSTANCE_NUMBER, VR::IS, number.to_string()),
        ]);
    }
    elements.push(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(s.stored.iter().map(|v| *v as u16).collect()),
    ));
    let file = InMemDicomObject::from_element_iter(elements)
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(s.uid.as_str()),
        )
        .map_err(|e| Error::Param(format!("cannot make the DICOM header: {e}")))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| Error::Param(format!("cannot encode the DICOM file: {e}")))?;
    Ok(bytes)
}

/// A UID under 2.25 from numbers, so that the same phantom always gets the same ones.
fn uid(parts: &[usize]) -> String {
    let n = parts.iter().fold(7u64, |acc, p| {
        acc.wrapping_mul(1_000_003).wrapping_add(*p as u64)
    });
    format!("2.25.{n}")
}

/// The bytes of a CT-like DICOM file (CT Image Storage, explicit VR little endian): `stored` as
/// signed 16-bit values, `intercept` as Rescale Intercept (slope 1), square 1 mm pixels.
pub fn ct_bytes(h: usize, w: usize, stored: &[i16], intercept: f64) -> Result<Vec<u8>> {
    encode(&Slice {
        h,
        w,
        stored,
        intercept,
        uid: uid(&[h, w]),
        series: None,
        place: None,
    })
}

/// A volume as a CT series, one file per z slice: `(file name, bytes)`. Values are stored as
/// v − `intercept` in signed 16 bits. The volume's affine must be one dcm2niix writes for a
/// series (x along DICOM rows, y up the DICOM rows, z along their normal: a left-handed grid),
/// so that reading the series gives back the volume on the same grid.
pub fn ct_series(v: &Volume, intercept: f64) -> Result<Vec<(String, Vec<u8>)>> {
    let a = affine(&v.header);
    let [nx, ny, nz] = v.dims;
    let column = |j: usize| [a[0][j], a[1][j], a[2][j]];
    let length = |c: [f64; 3]| c.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (sx, sy, sz) = (length(column(0)), length(column(1)), length(column(2)));
    // RAS to DICOM's LPS: x and y negated.
    let lps = |c: [f64; 3]| [-c[0], -c[1], c[2]];
    let row = lps(column(0)).map(|x| x / sx);
    let col = lps(column(1)).map(|x| -x / sy);
    let normal = lps(column(2)).map(|x| x / sz);
    let cross = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    if (0..3).any(|i| (cross[i] - normal[i]).abs() > 1e-6) {
        return Err(Error::Param(
            "this volume's affine is not laid out as a DICOM series (x along rows, y up the \
             rows, z along row × column)"
                .into(),
        ));
    }
    let series = uid(&[nx, ny, nz, 1]);
    let origin = [a[0][3], a[1][3], a[2][3]];
    let plane = nx * ny;
    (0..nz)
        .map(|k| {
            // The first DICOM row is the last y.
            let corner =
                lps([0, 1, 2].map(|i| origin[i] + (ny - 1) as f64 * a[i][1] + k as f64 * a[i][2]));
            let values = &v.data[k * plane..(k + 1) * plane];
            let stored = (0..ny)
                .flat_map(|r| values[(ny - 1 - r) * nx..(ny - r) * nx].iter())
                .map(|x| {
                    let s = (*x as f64 - intercept).round();
                    if (i16::MIN as f64..=i16::MAX as f64).contains(&s) {
                        Ok(s as i16)
                    } else {
                        Err(Error::Param(format!(
                            "value {x} does not fit signed 16 bits with intercept {intercept}"
                        )))
                    }
                })
                .collect::<Result<Vec<i16>>>()?;
            let bytes = encode(&Slice {
                h: ny,
                w: nx,
                stored: &stored,
                intercept,
                uid: uid(&[nx, ny, nz, 2, k]),
                series: Some((series.clone(), k + 1)),
                place: Some(Place {
                    position: corner,
                    orientation: [row[0], row[1], row[2], col[0], col[1], col[2]],
                    spacing: [sy, sx],
                    thickness: sz,
                }),
            })?;
            Ok((format!("slice_{:04}.dcm", k + 1), bytes))
        })
        .collect()
}
