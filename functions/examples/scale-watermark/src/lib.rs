//! Example tenant encoder: scales the frame to `WIDTH` (environment, default
//! 640) and draws the stream time in the corner before encoding.

wit_bindgen::generate!({ path: "../../wit", world: "encoder" });

use livesnap::snapshot::types::Frame as WitFrame;

struct ScaleWatermark;

impl Guest for ScaleWatermark {
    fn encode(f: Frame, quality: u8) -> Result<Image, String> {
        let width = std::env::var("WIDTH").ok().and_then(|w| w.parse().ok()).unwrap_or(640u32);
        let mut small = scale(&f, width)?;
        stamp(&mut small, &clock(f.pts_ms));
        let data = yuv_jpeg::encode_planes(small.width, small.height, &small.y, &small.u, &small.v, quality)?;
        Ok(Image { content_type: "image/jpeg".into(), width: small.width, height: small.height, data })
    }
}

export!(ScaleWatermark);

/// Planes of a 4:2:0 picture.
pub struct Planes {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Luma.
    pub y: Vec<u8>,
    /// Cb.
    pub u: Vec<u8>,
    /// Cr.
    pub v: Vec<u8>,
}

/// Box-filter downscale to `width` (never up), even dimensions.
pub fn scale(f: &WitFrame, width: u32) -> Result<Planes, String> {
    if f.width == 0 || f.height == 0 {
        return Err("empty frame".into());
    }
    let w = width.clamp(2, f.width) & !1;
    let h = ((u64::from(f.height) * u64::from(w) / u64::from(f.width)) as u32).max(2) & !1;
    let (cw, ch) = (f.width.div_ceil(2), f.height.div_ceil(2));
    Ok(Planes {
        width: w,
        height: h,
        y: resample(&f.y, f.width, f.height, w, h),
        u: resample(&f.u, cw, ch, w / 2, h / 2),
        v: resample(&f.v, cw, ch, w / 2, h / 2),
    })
}

fn resample(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((dw * dh) as usize);
    for y in 0..dh {
        let (y0, y1) = (y * sh / dh, ((y + 1) * sh / dh).max(y * sh / dh + 1).min(sh));
        for x in 0..dw {
            let (x0, x1) = (x * sw / dw, ((x + 1) * sw / dw).max(x * sw / dw + 1).min(sw));
            let mut sum = 0u32;
            for yy in y0..y1 {
                let row = &src[(yy * sw) as usize..];
                sum += row[x0 as usize..x1 as usize].iter().map(|&p| u32::from(p)).sum::<u32>();
            }
            out.push((sum / ((y1 - y0) * (x1 - x0))) as u8);
        }
    }
    out
}

/// `HH:MM:SS.mmm` of a stream time.
pub fn clock(ms: u64) -> String {
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

// 3x5 glyphs for digits, ':' and '.', one row per 3-bit value.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        ':' => [0, 2, 0, 2, 0],
        '.' => [0, 0, 0, 0, 2],
        _ => [0; 5],
    }
}

/// Draws `text` white on a dark box in the top-left corner.
pub fn stamp(p: &mut Planes, text: &str) {
    let scale = (p.width / 160).max(1);
    let (box_w, box_h) = ((text.len() as u32 * 4 + 2) * scale, 7 * scale);
    for y in 0..box_h.min(p.height) {
        for x in 0..box_w.min(p.width) {
            p.y[(y * p.width + x) as usize] = 16;
        }
    }
    for (i, c) in text.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits >> (2 - col) & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let x = (1 + i as u32 * 4 + col) * scale + dx;
                            let y = (1 + row as u32) * scale + dy;
                            if x < p.width && y < p.height {
                                p.y[(y * p.width + x) as usize] = 235;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_keeping_aspect_and_stamps_the_time() {
        let f = WitFrame {
            width: 1280,
            height: 720,
            pts_ms: 3_723_456,
            y: vec![100; 1280 * 720],
            u: vec![128; 640 * 360],
            v: vec![128; 640 * 360],
        };
        let mut p = scale(&f, 480).unwrap();
        assert_eq!((p.width, p.height, p.y.len(), p.u.len()), (480, 270, 480 * 270, 240 * 135));
        assert_eq!(clock(f.pts_ms), "01:02:03.456");
        stamp(&mut p, &clock(f.pts_ms));
        assert!(p.y.contains(&235) && p.y.contains(&16));
        assert!(yuv_jpeg::encode_planes(p.width, p.height, &p.y, &p.u, &p.v, 80).unwrap().starts_with(&[0xff, 0xd8]));
    }
}
