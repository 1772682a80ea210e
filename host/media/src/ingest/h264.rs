//! H.264 bitstream helpers: NAL unit types, AVCC (length-prefixed) to Annex-B,
//! and the AVC decoder configuration record.

use super::IngestError;

/// Annex-B start code.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// NAL unit type of a coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// The type of a NAL unit from its first byte.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// SPS/PPS and the NAL length size from an `AVCDecoderConfigurationRecord`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub length_size: usize,
    /// SPS and PPS as Annex-B.
    pub parameter_sets: Vec<u8>,
}

/// Parses an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.2.4.1).
pub fn parse_avc_config(data: &[u8], offset: u64) -> Result<AvcConfig, IngestError> {
    let bad = |detail: &str| IngestError::Malformed { what: "AVC sequence header", offset, detail: detail.into() };
    if data.len() < 7 {
        return Err(bad("shorter than 7 bytes"));
    }
    if data[0] != 1 {
        return Err(bad(&format!("configurationVersion {} (expected 1)", data[0])));
    }
    let length_size = usize::from(data[4] & 0x03) + 1;
    if length_size == 3 {
        return Err(bad("NAL length size 3 is not allowed"));
    }
    let mut parameter_sets = Vec::new();
    let mut pos = 5;
    for kind in ["SPS", "PPS"] {
        let count = *data.get(pos).ok_or_else(|| bad(&format!("{kind} count missing")))?;
        let count = if kind == "SPS" { count & 0x1f } else { count };
        pos += 1;
        for _ in 0..count {
            let len = data.get(pos..pos + 2).ok_or_else(|| bad(&format!("{kind} length missing")))?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let nal = data.get(pos + 2..pos + 2 + len).ok_or_else(|| bad(&format!("{kind} of {len} bytes is cut short")))?;
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(nal);
            pos += 2 + len;
        }
    }
    if !parameter_sets.windows(5).any(|w| w[..4] == START_CODE && w[4] & 0x1f == NAL_SPS) {
        return Err(bad("no SPS"));
    }
    Ok(AvcConfig { length_size, parameter_sets })
}

/// Converts length-prefixed NAL units to Annex-B. Returns the bytes and
/// whether an IDR slice was among them.
pub fn avcc_to_annexb(data: &[u8], length_size: usize, offset: u64) -> Result<(Vec<u8>, bool), IngestError> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut idr = false;
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data.get(pos..pos + length_size).ok_or_else(|| IngestError::Malformed {
            what: "NAL unit length",
            offset: offset + pos as u64,
            detail: format!("{} bytes left, need {length_size}", data.len() - pos),
        })?;
        let len = prefix.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        pos += length_size;
        let nal = data.get(pos..pos + len).ok_or_else(|| IngestError::Malformed {
            what: "NAL unit",
            offset: offset + pos as u64,
            detail: format!("length {len} runs past the end of the packet ({} bytes left)", data.len() - pos),
        })?;
        if len > 0 {
            idr |= nal_type(nal) == Some(NAL_IDR);
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
        pos += len;
    }
    Ok((out, idr))
}

/// Splits Annex-B bytes into NAL units (without start codes).
pub fn split_annexb(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts.iter().skip(1).map(|&s| s - 3).chain(std::iter::once(data.len())).collect();
    starts.into_iter().zip(ends).map(move |(s, e)| {
        // A 4-byte start code leaves a trailing zero on the previous unit.
        let mut e = e;
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        &data[s..e]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_roundtrip_and_idr_flag() {
        let data = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06];
        let (annexb, idr) = avcc_to_annexb(&data, 4, 0).unwrap();
        assert!(idr);
        assert_eq!(annexb, [0, 0, 0, 1, 0x65, 0xaa, 0, 0, 0, 1, 0x06]);
        let nals: Vec<&[u8]> = split_annexb(&annexb).collect();
        assert_eq!(nals, [&[0x65, 0xaa][..], &[0x06][..]]);
    }

    #[test]
    fn avcc_length_past_end_is_an_error_with_offset() {
        let err = avcc_to_annexb(&[0, 0, 0, 9, 0x65], 4, 100).unwrap_err();
        assert!(err.to_string().contains("at byte 104"), "{err}");
    }

    #[test]
    fn avc_config_needs_sps() {
        let cfg = [1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0x64, 1, 0, 2, 0x68, 0xee];
        let parsed = parse_avc_config(&cfg, 0).unwrap();
        assert_eq!(parsed.length_size, 4);
        assert_eq!(parsed.parameter_sets, [0, 0, 0, 1, 0x67, 0x64, 0, 0, 0, 1, 0x68, 0xee]);
        assert!(parse_avc_config(&cfg[..9], 0).is_err());
        assert!(parse_avc_config(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0], 0).is_err());
    }
}
