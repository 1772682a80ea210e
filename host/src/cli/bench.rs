//! `livesnap bench-encode`: the JPEG encoder in WebAssembly against the same
//! code native, and the cost of a fresh instance (used by scripts/bench).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use livesnap::config::RuntimeConfig;
use livesnap::runtime::bindings::types::Frame;
use livesnap::runtime::{CallLimits, Runtime};
use livesnap::storage::Buckets;

/// Arguments of `livesnap bench-encode`.
#[derive(Args)]
pub struct BenchArgs {
    /// A raw full-range yuv420p frame (ffmpeg -pix_fmt yuvj420p -f rawvideo); synthetic when absent.
    #[arg(long)]
    yuv: Option<PathBuf>,
    /// Frame width.
    #[arg(long, default_value_t = 1920)]
    width: u32,
    /// Frame height.
    #[arg(long, default_value_t = 1080)]
    height: u32,
    /// Encodes per measurement.
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// JPEG quality.
    #[arg(long, default_value_t = 80)]
    quality: u8,
}

/// Prints one JSON line: native and Wasm median ms per frame (the Wasm call
/// includes copying the frame in and the image out), their ratio, and the
/// instantiation time in µs.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (w, h) = (args.width as usize, args.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (y, u, v) = match &args.yuv {
        Some(path) => {
            let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if data.len() < w * h + 2 * cw * ch {
                bail!("{} holds {} bytes; a {w}x{h} yuv420p frame needs {}", path.display(), data.len(), w * h + 2 * cw * ch);
            }
            (data[..w * h].to_vec(), data[w * h..w * h + cw * ch].to_vec(), data[w * h + cw * ch..w * h + 2 * cw * ch].to_vec())
        }
        None => synthetic(w, h),
    };
    let n = args.iterations.max(1);
    let dir = std::env::temp_dir().join(format!("livesnap-bench-{}", std::process::id()));
    let runtime = Runtime::new(Arc::new(Buckets::open(&RuntimeConfig::embedded(&dir).buckets, "http://127.0.0.1:8080")?), None)?;
    runtime.load("encode-jpeg", livesnap::runtime::Source::Bytes(livesnap::builtins::ENCODE_JPEG), Default::default())?;
    let limits = CallLimits { timeout: std::time::Duration::from_secs(60), memory: 512 << 20 };
    let frame = || Frame { width: args.width, height: args.height, pts_ms: 0, y: y.clone(), u: u.clone(), v: v.clone() };
    runtime.encode("encode-jpeg", frame(), args.quality, limits)?; // warm-up
    // Interleaved, and medians: frequency changes and neighbours hit both sides alike.
    let (mut native, mut wasm) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(yuv_jpeg::encode_planes(args.width, args.height, &y, &u, &v, args.quality).map_err(anyhow::Error::msg)?);
        native.push(start.elapsed().as_secs_f64() * 1000.0);
        let f = frame();
        let start = Instant::now();
        std::hint::black_box(runtime.encode("encode-jpeg", f, args.quality, limits)?);
        wasm.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (native, wasm) = (median(native), median(wasm));
    let instantiate = runtime.time_instantiate("encode-jpeg", 200)?;
    println!(
        "{}",
        json!({"width": args.width, "height": args.height, "native_ms": native, "wasm_ms": wasm,
               "wasm_over_native": wasm / native, "instantiate_us": instantiate.as_secs_f64() * 1e6})
    );
    Ok(ExitCode::SUCCESS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A moving-picture-like test pattern: gradients and texture.
fn synthetic(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let y = (0..w * h).map(|i| ((i % w) * 255 / w) as u8 ^ (((i / w) * 7 + (i % w) * 3) % 31) as u8).collect();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let u = (0..cw * ch).map(|i| (64 + (i % cw) * 128 / cw) as u8).collect();
    let v = (0..cw * ch).map(|i| (64 + (i / cw) * 128 / ch) as u8).collect();
    (y, u, v)
}
