//! Builds the built-in components into OUT_DIR for `include_bytes!`.

mod wasm_build;

fn main() {
    wasm_build::build(&["encode-jpeg", "store-obs", "notify-callback"]);
}
