//! The built-in components, built from `functions/` by this crate's build
//! script and embedded: what templates use when they name no component.
//! Only the `livesnap` binary depends on this crate, so checking or testing
//! the media, engine and server crates builds no WebAssembly.

#![deny(missing_docs)]

/// `encode-jpeg` (world `encoder`).
pub const ENCODE_JPEG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/components/encode_jpeg.wasm"));
/// `store-obs` (world `storer`).
pub const STORE_OBS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/components/store_obs.wasm"));
/// `notify-callback` (world `notifier`).
pub const NOTIFY_CALLBACK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/components/notify_callback.wasm"));

/// The built-in component of that name.
pub fn get(name: &str) -> Option<&'static [u8]> {
    match name {
        "encode-jpeg" => Some(ENCODE_JPEG),
        "store-obs" => Some(STORE_OBS),
        "notify-callback" => Some(NOTIFY_CALLBACK),
        _ => None,
    }
}
