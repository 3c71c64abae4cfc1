//! DICOM files written with dicom-rs, for the tests of csfuse's DICOM reader.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
pub const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

/// The RLE Lossless fragment of grey `values` at `bits` (8 or 16): one segment per byte, most
/// significant first, each as literal runs of at most 128 bytes (DICOM PS3.5 annex G).
fn rle_fragment(values: &[i64], bits: u16) -> Vec<u8> {
    let bytes = (bits / 8) as usize;
    let segments: Vec<Vec<u8>> = (0..bytes)
        .map(|b| {
            let shift = 8 * (bytes - 1 - b);
            let plane: Vec<u8> = values.iter().map(|v| (*v >> shift) as u8).collect();
            let mut seg = Vec::new();
            for run in plane.chunks(128) {
                seg.push((run.len() - 1) as u8);
                seg.extend_from_slice(run);
            }
            if seg.len() % 2 == 1 {
                seg.push(0);
            }
            seg
        })
        .collect();
    let mut header = [0u32; 16];
    header[0] = bytes as u32;
    let mut at = 64;
    for (i, seg) in segments.iter().enumerate() {
        header[i + 1] = at;
        at += seg.len() as u32;
    }
    let mut out: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    segments.iter().for_each(|s| out.extend_from_slice(s));
    out
}

/// What a generated file holds.
pub struct Spec<'a> {
    pub rows: u16,
    pub cols: u16,
    pub photometric: &'a str,
    pub samples: u16,
    pub bits: u16,
    pub stored: u16,
    pub signed: bool,
    pub planar: bool,
    pub rescale: Option<(&'a str, &'a str)>,
    pub frames: Option<&'a str>,
    pub ts: &'a str,
    /// Stored values, little endian at `bits`.
    pub values: Vec<i64>,
    /// Where the slice lies, for a series.
    pub place: Option<Place<'a>>,
}

/// A slice of a series: its Series Instance UID and Image Position/Orientation (Patient), Pixel
/// Spacing as DICOM strings (`None` leaves the attribute out).
#[derive(Clone)]
pub struct Place<'a> {
    pub series: &'a str,
    pub position: Option<String>,
    pub orientation: Option<&'a str>,
    pub spacing: &'a str,
}

pub fn grey<'a>(rows: u16, cols: u16, bits: u16, values: Vec<i64>) -> Spec<'a> {
    Spec {
        rows,
        cols,
        photometric: "MONOCHROME2",
        samples: 1,
        bits,
        stored: bits,
        signed: false,
        planar: false,
        rescale: None,
        frames: None,
        ts: EXPLICIT_LE,
        values,
        place: None,
    }
}

pub fn write(path: &Path, s: &Spec) {
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let mut el = vec![
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7"),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "2.25.4242"),
        DataElement::new(tags::MODALITY, VR::CS, "OT"),
        us(tags::SAMPLES_PER_PIXEL, s.samples),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s.photometric),
        us(tags::ROWS, s.rows),
        us(tags::COLUMNS, s.cols),
        us(tags::BITS_ALLOCATED, s.bits),
        us(tags::BITS_STORED, s.stored),
        us(tags::HIGH_BIT, s.stored - 1),
        us(tags::PIXEL_REPRESENTATION, s.signed as u16),
    ];
    if s.samples == 3 {
        el.push(us(tags::PLANAR_CONFIGURATION, s.planar as u16));
    }
    if let Some((slope, intercept)) = s.rescale {
        el.push(DataElement::new(tags::RESCALE_SLOPE, VR::DS, slope));
        el.push(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, intercept));
    }
    if let Some(p) = &s.place {
        el.push(DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            p.series,
        ));
        el.push(DataElement::new(tags::PIXEL_SPACING, VR::DS, p.spacing));
        if let Some(pos) = &p.position {
            el.push(DataElement::new(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                pos.as_str(),
            ));
        }
        if let Some(o) = p.orientation {
            el.push(DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, o));
        }
    }
    if let Some(n) = s.frames {
        el.push(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, n));
    }
    let pixels = match s.bits {
        _ if s.ts == RLE_LOSSLESS => DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            dicom_core::value::PixelFragmentSequence::new(
                Vec::<u32>::new(),
                vec![rle_fragment(&s.values, s.bits)],
            ),
        ),
        8 => DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(s.values.iter().map(|v| *v as u8).collect()),
        ),
        16 => DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(s.values.iter().map(|v| *v as u16).collect()),
        ),
        _ => unreachable!("8 or 16 bits here"),
    };
    el.push(pixels);
    InMemDicomObject::from_element_iter(el)
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(s.ts)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid("2.25.4242"),
        )
        .unwrap()
        .write_to_file(path)
        .unwrap();
}
