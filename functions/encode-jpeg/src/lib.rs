//! The default encoder: a full-range YUV 4:2:0 frame to a baseline JPEG.
//!
//! The planes go straight to jpeg-encoder through its `ImageBuffer` trait, one
//! row at a time, so no RGB copy of the frame is ever made.

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType};

wit_bindgen::generate!({ path: "../wit", world: "encoder" });


struct EncodeJpeg;

impl Guest for EncodeJpeg {
    fn encode(f: Frame, quality: u8) -> Result<Image, String> {
        let data = encode_yuv420(&f, quality)?;
        Ok(Image { content_type: "image/jpeg".into(), width: f.width, height: f.height, data })
    }
}

export!(EncodeJpeg);

/// Encodes a frame; `quality` is clamped to 1–100.
pub fn encode_yuv420(f: &Frame, quality: u8) -> Result<Vec<u8>, String> {
    let planes = Yuv420::new(f)?;
    let mut out = Vec::with_capacity(f.y.len() / 4);
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
    fn new(f: &'a Frame) -> Result<Self, String> {
        let (w, h) = (f.width as usize, f.height as usize);
        if w == 0 || h == 0 || w > 65_535 || h > 65_535 {
            return Err(format!("frame size {w}x{h} is outside 1x1..65535x65535"));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if f.y.len() != w * h || f.u.len() != cw * ch || f.v.len() != cw * ch {
            return Err(format!(
                "plane sizes y={} u={} v={} do not match a {w}x{h} 4:2:0 frame",
                f.y.len(),
                f.u.len(),
                f.v.len()
            ));
        }
        Ok(Self { width: w as u16, height: h as u16, chroma_width: cw, y: &f.y, u: &f.u, v: &f.v })
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
            for x in 0..w {
                out.push(line[x / 2]);
            }
        }
    }
}
