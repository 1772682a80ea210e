//! Baseline JPEG encoding of full-range YUV 4:2:0 planes, shared by the
//! encoder components.
//!
//! Written for this job rather than taken from a general encoder: the planes
//! are already 4:2:0, so each 16×16 MCU is four luma blocks and one block
//! from each chroma plane as it stands — no RGB, no upsampling, no
//! resampling and no copy of the frame. The DCT runs on eight lanes at a
//! time (Wasm SIMD128 in the components) and the entropy coder visits only
//! non-zero coefficients.

mod dct;
mod entropy;
mod lanes;
mod tables;

use dct::Quantizer;
use entropy::{BitWriter, HuffmanCodes};
use lanes::Row;
use tables::{CHROMA_AC, CHROMA_DC, HuffmanSpec, LUMA_AC, LUMA_DC, ZIGZAG};

/// Encodes full-range YUV 4:2:0 planes; `quality` is clamped to 1–100 and
/// scales the Annex K tables as libjpeg does.
pub fn encode_planes(width: u32, height: u32, y: &[u8], u: &[u8], v: &[u8], quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || w > 65_535 || h > 65_535 {
        return Err(format!("frame size {w}x{h} is outside 1x1..65535x65535"));
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if y.len() != w * h || u.len() != cw * ch || v.len() != cw * ch {
        return Err(format!("plane sizes y={} u={} v={} do not match a {w}x{h} 4:2:0 frame", y.len(), u.len(), v.len()));
    }
    let quant = tables::quantizers(quality);
    // Typical output is well under a bit per pixel; one reservation avoids regrowth.
    let mut out = Vec::with_capacity(1024 + w * h / 4);
    write_headers(&mut out, w as u16, h as u16, &quant);

    let planes =
        [Plane { data: y, width: w, height: h }, Plane { data: u, width: cw, height: ch }, Plane { data: v, width: cw, height: ch }];
    let quantizers = [Quantizer::new(&quant[0]), Quantizer::new(&quant[1])];
    let codes =
        [(HuffmanCodes::new(&LUMA_DC), HuffmanCodes::new(&LUMA_AC)), (HuffmanCodes::new(&CHROMA_DC), HuffmanCodes::new(&CHROMA_AC))];
    let mut writer = BitWriter::new(out);
    let mut prev_dc = [0i16; 3];
    let mut block = [Row::ZERO; 8];
    let mut coefs = [0i16; 64];
    for my in 0..h.div_ceil(16) {
        for mx in 0..w.div_ceil(16) {
            for (dx, dy) in [(0, 0), (8, 0), (0, 8), (8, 8)] {
                planes[0].load(mx * 16 + dx, my * 16 + dy, &mut block);
                dct::forward(&mut block, &quantizers[0], &mut coefs);
                writer.block(&coefs, &mut prev_dc[0], &codes[0].0, &codes[0].1);
            }
            for c in 1..3 {
                planes[c].load(mx * 8, my * 8, &mut block);
                dct::forward(&mut block, &quantizers[1], &mut coefs);
                writer.block(&coefs, &mut prev_dc[c], &codes[1].0, &codes[1].1);
            }
        }
    }
    let mut out = writer.finish();
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}

/// One image plane, row-major without padding.
struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

impl Plane<'_> {
    /// The 8×8 block at (x, y), level-shifted; blocks over the edge repeat
    /// the last column and row, which keeps the padding cheap to code.
    #[inline]
    fn load(&self, x: usize, y: usize, block: &mut [Row; 8]) {
        if x + 8 <= self.width && y + 8 <= self.height {
            for (r, row) in block.iter_mut().enumerate() {
                *row = Row::level_shifted(self.data[(y + r) * self.width + x..][..8].try_into().unwrap());
            }
        } else {
            for (r, row) in block.iter_mut().enumerate() {
                let line = &self.data[(y + r).min(self.height - 1) * self.width..][..self.width];
                *row = Row::from_array(std::array::from_fn(|c| f32::from(line[(x + c).min(self.width - 1)]) - 128.0));
            }
        }
    }
}

/// SOI, JFIF APP0, DQT, SOF0 (4:2:0), DHT and SOS.
fn write_headers(out: &mut Vec<u8>, width: u16, height: u16, quant: &[[u16; 64]; 2]) {
    out.extend_from_slice(&[0xFF, 0xD8]);
    segment(out, 0xE0, &[b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);

    let mut dqt = Vec::with_capacity(130);
    for (id, table) in quant.iter().enumerate() {
        dqt.push(id as u8);
        dqt.extend(ZIGZAG.iter().map(|&n| table[n] as u8));
    }
    segment(out, 0xDB, &dqt);

    let [hh, hl] = height.to_be_bytes();
    let [wh, wl] = width.to_be_bytes();
    segment(out, 0xC0, &[8, hh, hl, wh, wl, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);

    let mut dht = Vec::with_capacity(420);
    for (class_id, spec) in [(0x00, &LUMA_DC), (0x10, &LUMA_AC), (0x01, &CHROMA_DC), (0x11, &CHROMA_AC)] {
        push_huffman(&mut dht, class_id, spec);
    }
    segment(out, 0xC4, &dht);

    segment(out, 0xDA, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
}

fn push_huffman(dht: &mut Vec<u8>, class_id: u8, spec: &HuffmanSpec) {
    dht.push(class_id);
    dht.extend_from_slice(&spec.counts);
    dht.extend_from_slice(spec.symbols);
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Smooth gradients with some texture and gentle chroma ramps, kept inside
    /// the RGB gamut so the decoder's colour conversion loses nothing.
    fn picture(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let y = (0..w * h).map(|i| ((i % w) * 150 / w + 50 + ((i / w) * 3 + (i % w)) % 9) as u8).collect();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let u = (0..cw * ch).map(|i| (108 + (i % cw) * 40 / cw) as u8).collect();
        let v = (0..cw * ch).map(|i| (148 - (i / cw) * 40 / ch) as u8).collect();
        (y, u, v)
    }

    /// Decodes with an independent decoder and returns (width, height, luma
    /// PSNR, chroma PSNR against the nearest source sample), converting its
    /// RGB back with the JFIF equations.
    fn roundtrip(w: usize, h: usize, planes: &(Vec<u8>, Vec<u8>, Vec<u8>), quality: u8) -> (u16, u16, f64, f64) {
        let jpeg = encode_planes(w as u32, h as u32, &planes.0, &planes.1, &planes.2, quality).unwrap();
        let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
        let rgb = decoder.decode().unwrap();
        let info = decoder.info().unwrap();
        let psnr = |se: f64, n: usize| 10.0 * (255.0f64.powi(2) / (se / n as f64).max(1e-9)).log10();
        let (mut luma, mut chroma) = (0.0, 0.0);
        for (i, p) in rgb.chunks(3).enumerate() {
            let [r, g, b] = [0, 1, 2].map(|k| f64::from(p[k]));
            let c = (i / w / 2) * w.div_ceil(2) + (i % w) / 2;
            luma += (0.299 * r + 0.587 * g + 0.114 * b - f64::from(planes.0[i])).powi(2);
            chroma += (128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b - f64::from(planes.1[c])).powi(2)
                + (128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b - f64::from(planes.2[c])).powi(2);
        }
        (info.width, info.height, psnr(luma, w * h), psnr(chroma, 2 * w * h))
    }

    #[test]
    fn decodes_to_the_source_at_every_size_class() {
        // Whole MCUs, partial MCUs in either direction, odd sizes, a single pixel.
        for (w, h) in [(64, 48), (1, 1), (17, 9), (33, 35), (15, 16), (100, 7)] {
            let (dw, dh, luma, chroma) = roundtrip(w, h, &picture(w, h), 90);
            assert_eq!((usize::from(dw), usize::from(dh)), (w, h));
            assert!(luma > 38.0 && chroma > 35.0, "{w}x{h}: PSNR luma {luma:.1} dB, chroma {chroma:.1} dB");
        }
    }

    #[test]
    fn quality_trades_size_for_fidelity() {
        let p = picture(96, 64);
        let size = |q| encode_planes(96, 64, &p.0, &p.1, &p.2, q).unwrap().len();
        assert!(size(95) > size(50) && size(50) > size(10));
        assert!(roundtrip(96, 64, &p, 95).2 > roundtrip(96, 64, &p, 20).2 + 5.0);
        // The extremes stay valid baseline streams.
        for q in [0, 1, 100, 255] {
            assert_eq!(roundtrip(96, 64, &p, q).0, 96);
        }
    }

    #[test]
    fn noise_exercises_large_coefficients_and_byte_stuffing() {
        let mut state = 0x2545_f491_u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect()
        };
        let (w, h) = (48, 40);
        // Neutral chroma keeps the noisy luma inside the RGB gamut.
        let planes = (noise(w * h), vec![128; 24 * 20], vec![128; 24 * 20]);
        let jpeg = encode_planes(w as u32, h as u32, &planes.0, &planes.1, &planes.2, 100).unwrap();
        let scan = &jpeg[jpeg.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap() + 14..jpeg.len() - 2];
        assert!(scan.windows(2).any(|b| b == [0xFF, 0]), "noise at q100 should need stuffing");
        assert!(scan.windows(2).all(|b| b[0] != 0xFF || b[1] == 0), "unstuffed 0xFF in the scan");
        let (_, _, psnr, _) = roundtrip(w, h, &planes, 100);
        assert!(psnr > 30.0, "noise at q100: {psnr:.1} dB");
    }

    #[test]
    fn refuses_planes_that_do_not_match_the_size() {
        let p = picture(16, 16);
        assert!(encode_planes(16, 16, &p.0[1..], &p.1, &p.2, 80).unwrap_err().contains("do not match a 16x16"));
        assert!(encode_planes(0, 16, &[], &[], &[], 80).unwrap_err().contains("outside"));
    }
}
