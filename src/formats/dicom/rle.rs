//! RLE Lossless pixel data (DICOM PS3.5 annex G): a 64-byte header of segment offsets, then one
//! PackBits segment per byte of each sample, most significant byte first. Written here rather
//! than taken from dicom-rs because every length and offset is checked: a corrupt file is an
//! error, never a panic (the fuzz tests found dicom-rs's adapter indexing past a short segment).

/// Decode one frame of `pixels` pixels with `samples` samples of `bytes` bytes each into native
/// little-endian samples, interleaved.
pub(super) fn decode(
    frame: &[u8],
    pixels: usize,
    samples: usize,
    bytes: usize,
) -> Result<Vec<u8>, String> {
    if frame.len() < 64 {
        return Err(format!(
            "{} bytes, shorter than the 64-byte header",
            frame.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes(frame[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    let count = word(0);
    if count != samples * bytes {
        return Err(format!(
            "{count} segments, but {samples} samples of {bytes} bytes need {}",
            samples * bytes
        ));
    }
    // A repeat run turns 2 bytes into at most 128: a header claiming more than that cannot be
    // met, and is refused before its size is allocated.
    if pixels > 64 * frame.len() {
        return Err(format!(
            "{pixels} pixels per segment cannot come from a {}-byte frame",
            frame.len()
        ));
    }
    let offsets: Vec<usize> = (1..=count).map(word).collect();
    let mut out = vec![0u8; pixels * samples * bytes];
    for (k, &start) in offsets.iter().enumerate() {
        let end = offsets.get(k + 1).copied().unwrap_or(frame.len());
        if start < 64 || start > end || end > frame.len() {
            return Err(format!(
                "segment {} runs from byte {start} to {end} of a {}-byte frame",
                k + 1,
                frame.len()
            ));
        }
        let plane =
            unpack(&frame[start..end], pixels).map_err(|e| format!("segment {}: {e}", k + 1))?;
        // Segment k holds byte (k % bytes) of sample (k / bytes), most significant first.
        let (sample, byte) = (k / bytes, bytes - 1 - k % bytes);
        for (i, v) in plane.into_iter().enumerate() {
            out[(i * samples + sample) * bytes + byte] = v;
        }
    }
    Ok(out)
}

/// One PackBits segment, which must give exactly `n` bytes (trailing padding is allowed).
fn unpack(seg: &[u8], n: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n && i < seg.len() {
        let h = seg[i] as i8;
        i += 1;
        match h {
            0..=127 => {
                let len = h as usize + 1;
                let run = seg.get(i..i + len).ok_or_else(|| {
                    format!("a literal run of {len} bytes passes the segment's end")
                })?;
                out.extend_from_slice(run);
                i += len;
            }
            -127..=-1 => {
                let v = *seg
                    .get(i)
                    .ok_or_else(|| "a repeat run passes the segment's end".to_string())?;
                out.extend(std::iter::repeat_n(v, 1 + (-(h as i16)) as usize));
                i += 1;
            }
            -128 => {}
        }
    }
    if out.len() < n {
        return Err(format!("decodes to {} bytes, {n} expected", out.len()));
    }
    if out.len() > n {
        return Err(format!("decodes to more than the {n} bytes expected"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut header = [0u32; 16];
        header[0] = segments.len() as u32;
        let mut at = 64;
        for (i, s) in segments.iter().enumerate() {
            header[i + 1] = at;
            at += s.len() as u32;
        }
        let mut out: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
        segments.iter().for_each(|s| out.extend_from_slice(s));
        out
    }

    #[test]
    fn literal_and_repeat_runs_decode_to_interleaved_samples() {
        // 4 pixels of 16 bits: high bytes as a repeat run, low bytes as a literal run.
        let f = frame(&[vec![0xFD, 0x01, 0x80], vec![3, 10, 20, 30, 40]]);
        let out = decode(&f, 4, 1, 2).unwrap();
        let values: Vec<u16> = out
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, vec![266, 276, 286, 296]);
        // RGB, 8 bits: three segments, interleaved on output.
        let f = frame(&[vec![1, 1, 2], vec![1, 3, 4], vec![0xFF, 9]]);
        assert_eq!(decode(&f, 2, 3, 1).unwrap(), vec![1, 3, 9, 2, 4, 9]);
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let good = frame(&[vec![3, 10, 20, 30, 40]]);
        assert!(decode(&good[..40], 4, 1, 1).unwrap_err().contains("header"));
        assert!(decode(&good, 4, 1, 2).unwrap_err().contains("segments"));
        assert!(decode(&good, 5, 1, 1)
            .unwrap_err()
            .contains("4 bytes, 5 expected"));
        assert!(decode(&good[..66], 4, 1, 1).unwrap_err().contains("passes"));
        let mut bad_offset = good.clone();
        bad_offset[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decode(&bad_offset, 4, 1, 1)
            .unwrap_err()
            .contains("segment 1"));
        let long = frame(&[vec![0xFB, 7]]);
        assert!(decode(&long, 4, 1, 1).unwrap_err().contains("more than"));
    }
}
