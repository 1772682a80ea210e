//! The default encoder: a full-range YUV 4:2:0 frame to a baseline JPEG
//! (the encoding itself is in the yuv-jpeg library).

wit_bindgen::generate!({ path: "../wit", world: "encoder" });

struct EncodeJpeg;

impl Guest for EncodeJpeg {
    fn encode(f: Frame, quality: u8) -> Result<Image, String> {
        let data = yuv_jpeg::encode_planes(f.width, f.height, &f.y, &f.u, &f.v, quality)?;
        Ok(Image { content_type: "image/jpeg".into(), width: f.width, height: f.height, data })
    }
}

export!(EncodeJpeg);
