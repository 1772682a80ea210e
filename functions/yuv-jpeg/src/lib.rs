//! JPEG encoding of full-range YUV 4:2:0 planes, shared by the encoder
//! components. The planes go straight to jpeg-encoder through its
//! `ImageBuffer` trait, one row at a time, so no RGB copy is ever made.

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType};

/// Encodes full-range YUV 4:2:0 planes; `quality` is clamped to 1–100.
pub fn encode_planes(width: u32, height: u32, y: &[u8], u: &[u8], v: &[u8], quality: u8) -> Result<Vec<u8>, String> {
    let planes = Yuv420::new(width, height, y, u, v)?;
    let mut out = Vec::with_capacity(y.len() / 4);
    Encoder::new(&mut out, quality.clamp(1, 100))
        .encode_image(planes)
        .map_err(|e| format!("jpeg encoding failed: {e}"))?;
    Ok(out)
}

/// Borrowed planes of a frame, checked against its dimensions.
struct Yuv420<'a> {
    width: u16,
    height: u16,
    chroma_width: usize,
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
}

impl<'a> Yuv420<'a> {
    fn new(width: u32, height: u32, y: &'a [u8], u: &'a [u8], v: &'a [u8]) -> Result<Self, String> {
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || w > 65_535 || h > 65_535 {
            return Err(format!("frame size {w}x{h} is outside 1x1..65535x65535"));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if y.len() != w * h || u.len() != cw * ch || v.len() != cw * ch {
            return Err(format!(
                "plane sizes y={} u={} v={} do not match a {w}x{h} 4:2:0 frame",
                y.len(),
                u.len(),
                v.len()
            ));
        }
        Ok(Self { width: w as u16, height: h as u16, chroma_width: cw, y, u, v })
    }
}

impl ImageBuffer for Yuv420<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    // The encoder asks for full-resolution rows and subsamples chroma itself;
    // repeating each chroma sample twice keeps it at the source's values.
    fn fill_buffers(&self, row: u16, buffers: &mut [Vec<u8>; 4]) {
        let w = self.width as usize;
        let row = row as usize;
        buffers[0].extend_from_slice(&self.y[row * w..(row + 1) * w]);
        let c = (row / 2) * self.chroma_width;
        for (plane, buffer) in [(self.u, 1), (self.v, 2)] {
            let line = &plane[c..c + self.chroma_width];
            let out = &mut buffers[buffer];
            let start = out.len();
            out.resize(start + w, 0);
            for (pair, &sample) in out[start..].chunks_mut(2).zip(line) {
                pair.fill(sample);
            }
        }
    }
}
