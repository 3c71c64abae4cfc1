//! Element lengths checked against the file before dicom-rs parses it. The parser allocates and
//! zero-fills whatever length a header claims before it reads a byte, so a 1 KB file whose header
//! claims a 4 GB element would cost 4 GB (and an out-of-memory kill instead of an error). Every
//! defined length, in the file meta, the data set, sequences, items and pixel fragments, must fit
//! in what is left of the file.

/// Deeper nesting than this is refused rather than followed (real files nest a few levels).
const MAX_DEPTH: usize = 64;

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// Explicit VRs with a 2-byte reserved field and a 4-byte length.
const LONG_VRS: [&[u8; 2]; 13] = [
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
];

/// Checks a whole Part 10 file (`bytes` from its first byte; `start` is the offset after `DICM`).
/// The error says which element claims how much.
pub(super) fn check(bytes: &[u8], start: usize) -> Result<(), String> {
    let meta = Walker {
        bytes,
        explicit: true,
        big: false,
    };
    let (data_start, syntax) = meta.meta(start)?;
    let syntax = syntax.as_deref().unwrap_or("");
    if syntax == DEFLATED {
        return Ok(()); // a zlib stream: nothing to walk (and refused later anyway)
    }
    let data = Walker {
        bytes,
        explicit: syntax != IMPLICIT_LE,
        big: syntax == EXPLICIT_BE,
    };
    data.elements(data_start, bytes.len(), 0).map(|_| ())
}

struct Walker<'a> {
    bytes: &'a [u8],
    explicit: bool,
    big: bool,
}

impl Walker<'_> {
    fn u16(&self, at: usize) -> u16 {
        let b = [self.bytes[at], self.bytes[at + 1]];
        if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, at: usize) -> u32 {
        let b: [u8; 4] = self.bytes[at..at + 4].try_into().unwrap();
        if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn tag(&self, at: usize) -> (u16, u16) {
        (self.u16(at), self.u16(at + 2))
    }

    /// The file meta group (always explicit VR little endian): where the data set starts, and the
    /// transfer syntax it names.
    fn meta(&self, mut pos: usize) -> Result<(usize, Option<String>), String> {
        let mut syntax = None;
        while pos + 8 <= self.bytes.len() && self.tag(pos).0 == 0x0002 {
            let (tag, header, len) = self.header(pos)?;
            let value = self.value(pos, tag, header, len)?;
            if tag == (0x0002, 0x0010) {
                let v = &self.bytes[value..value + len as usize];
                syntax = Some(
                    String::from_utf8_lossy(v)
                        .trim_end_matches(['\0', ' '])
                        .to_string(),
                );
            }
            pos = value + len as usize;
        }
        Ok((pos, syntax))
    }

    /// An element's tag, header size and length (`UNDEFINED` for an undefined length).
    fn header(&self, pos: usize) -> Result<((u16, u16), usize, u32), String> {
        let tag = self.tag(pos);
        let explicit = self.explicit && tag.0 != 0xFFFE; // items and delimiters carry no VR
        if !explicit {
            return Ok((tag, 8, self.u32(pos + 4)));
        }
        let vr: &[u8; 2] = self.bytes[pos + 4..pos + 6].try_into().unwrap();
        if LONG_VRS.contains(&vr) {
            if pos + 12 > self.bytes.len() {
                // Cut inside a header: nothing is allocated for it; dicom-rs reports it.
                return Ok((tag, 12, 0));
            }
            Ok((tag, 12, self.u32(pos + 8)))
        } else {
            Ok((tag, 8, u32::from(self.u16(pos + 6))))
        }
    }

    /// Where a defined-length value starts, once its length is known to fit.
    fn value(&self, pos: usize, tag: (u16, u16), header: usize, len: u32) -> Result<usize, String> {
        let start = pos + header;
        let left = self.bytes.len().saturating_sub(start);
        if len != UNDEFINED && len as usize > left {
            let what = if tag == ITEM { "item" } else { "element" };
            return Err(format!(
                "{what} ({:04X},{:04X}) at byte {pos} claims {len} bytes, but only {left} are left in the file",
                tag.0, tag.1
            ));
        }
        Ok(start)
    }

    fn is_sequence(&self, pos: usize, start: usize, len: u32) -> bool {
        if self.explicit {
            &self.bytes[pos + 4..pos + 6] == b"SQ"
        } else {
            // Implicit VR: a value that opens with an item tag is a sequence.
            len == UNDEFINED
                || (len >= 8 && start + 4 <= self.bytes.len() && self.tag(start) == ITEM)
        }
    }

    /// Data elements from `pos` to `end`, or to an item delimiter (returns the offset after it).
    fn elements(&self, mut pos: usize, end: usize, depth: usize) -> Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "sequences nested deeper than {MAX_DEPTH} levels at byte {pos}"
            ));
        }
        while pos < end {
            if end - pos < 8 {
                return Ok(end); // a cut header: dicom-rs reports it
            }
            let (tag, header, len) = self.header(pos)?;
            if tag == ITEM_END || tag == SEQUENCE_END {
                return Ok(pos + 8);
            }
            let start = self.value(pos, tag, header, len)?;
            if len != UNDEFINED && start + len as usize > end {
                return Err(format!(
                    "element ({:04X},{:04X}) at byte {pos} runs past the end of its item",
                    tag.0, tag.1
                ));
            }
            pos = if tag == PIXEL_DATA && len == UNDEFINED {
                self.items(start, end, depth + 1, true)?
            } else if self.is_sequence(pos, start, len) {
                let stop = if len == UNDEFINED {
                    end
                } else {
                    start + len as usize
                };
                let after = self.items(start, stop, depth + 1, false)?;
                if len == UNDEFINED {
                    after
                } else {
                    stop
                }
            } else if len == UNDEFINED {
                // An undefined length outside a sequence or pixel data: dicom-rs refuses it.
                return Ok(end);
            } else {
                start + len as usize
            };
        }
        Ok(end.min(pos))
    }

    /// The items of a sequence (or the fragments of encapsulated pixel data) from `pos` to `end`,
    /// or to a sequence delimiter (returns the offset after it).
    fn items(
        &self,
        mut pos: usize,
        end: usize,
        depth: usize,
        fragments: bool,
    ) -> Result<usize, String> {
        while pos < end {
            if end - pos < 8 {
                return Ok(end);
            }
            let tag = self.tag(pos);
            let len = self.u32(pos + 4);
            if tag == SEQUENCE_END {
                return Ok(pos + 8);
            }
            if tag != ITEM {
                // Not an item where one must be: dicom-rs reports it.
                return Ok(end);
            }
            let start = self.value(pos, tag, 8, len)?;
            pos = if len == UNDEFINED {
                if fragments {
                    return Ok(end); // fragments have defined lengths; dicom-rs refuses this
                }
                self.elements(start, end, depth + 1)?
            } else {
                let stop = start + len as usize;
                if stop > end {
                    return Err(format!(
                        "item at byte {pos} runs past the end of its sequence"
                    ));
                }
                if !fragments {
                    self.elements(start, stop, depth + 1)?;
                }
                stop
            };
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Part 10 file: preamble, DICM, a meta group naming `syntax`, then `body`.
    fn file(syntax: &str, body: &[u8]) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend_from_slice(&(uid.len() as u16).to_le_bytes());
        b.extend_from_slice(&uid);
        b.extend_from_slice(body);
        b
    }

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8], claimed: Option<u32>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&tag.0.to_le_bytes());
        b.extend_from_slice(&tag.1.to_le_bytes());
        b.extend_from_slice(vr);
        let len = claimed.unwrap_or(value.len() as u32);
        if LONG_VRS.contains(&vr) {
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&len.to_le_bytes());
        } else {
            b.extend_from_slice(&(len as u16).to_le_bytes());
        }
        b.extend_from_slice(value);
        b
    }

    fn item(tag: (u16, u16), len: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&tag.0.to_le_bytes());
        b.extend_from_slice(&tag.1.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b
    }

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

    #[test]
    fn a_sound_file_passes() {
        let mut body = explicit((0x0010, 0x0010), b"PN", b"Doe^J ", None);
        let nested = explicit((0x0008, 0x0100), b"SH", b"T-A0", None);
        let items = [
            item(ITEM, nested.len() as u32, &nested),
            item(SEQUENCE_END, 0, &[]),
        ]
        .concat();
        body.extend(explicit((0x0008, 0x1032), b"SQ", &items, Some(UNDEFINED)));
        body.extend(explicit(PIXEL_DATA, b"OW", &[0; 16], None));
        check(&file(EXPLICIT_LE, &body), 132).unwrap();
    }

    #[test]
    fn a_huge_claim_is_refused_before_any_allocation() {
        let body = explicit(PIXEL_DATA, b"OW", &[0; 16], Some(0xF000_0000));
        let e = check(&file(EXPLICIT_LE, &body), 132).unwrap_err();
        assert!(
            e.contains("(7FE0,0010)") && e.contains("4026531840 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_huge_claim_inside_a_sequence_item_is_refused() {
        let nested = explicit((0x0008, 0x0100), b"UT", b"ab", Some(1 << 30));
        let items = [item(ITEM, UNDEFINED, &nested), item(ITEM_END, 0, &[])].concat();
        let body = explicit((0x0008, 0x1032), b"SQ", &items, Some(UNDEFINED));
        let e = check(&file(EXPLICIT_LE, &body), 132).unwrap_err();
        assert!(e.contains("(0008,0100)"), "{e}");
    }

    #[test]
    fn implicit_vr_and_fragments_are_walked() {
        // Implicit VR: tag, 4-byte length, value.
        let mut body = item((0x0010, 0x0010), 6, b"Doe^J ");
        body.extend(item((0x0028, 0x0010), 0x7FFF_0000, &[0; 2]));
        let e = check(&file(IMPLICIT_LE, &body), 132).unwrap_err();
        assert!(e.contains("(0028,0010)"), "{e}");
        // Encapsulated pixel data: a fragment claiming more than the file holds.
        let frags = [item(ITEM, 0, &[]), item(ITEM, 1 << 31, &[1, 2, 3, 4])].concat();
        let body = explicit(PIXEL_DATA, b"OB", &frags, Some(UNDEFINED));
        let e = check(&file("1.2.840.10008.1.2.4.50", &body), 132).unwrap_err();
        assert!(e.starts_with("item (FFFE,E000)"), "{e}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..100 {
            let items = [
                item(ITEM, UNDEFINED, &inner),
                item(ITEM_END, 0, &[]),
                item(SEQUENCE_END, 0, &[]),
            ]
            .concat();
            inner = explicit((0x0008, 0x1032), b"SQ", &items, Some(UNDEFINED));
        }
        let e = check(&file(EXPLICIT_LE, &inner), 132).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
    }
}
