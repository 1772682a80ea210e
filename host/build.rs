//! Tells the binary and the end-to-end tests where the built components are
//! (livesnap-engine's build script builds them before this package).

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/target/wasm32-wasip2/release");
    println!("cargo:rustc-env=LIVESNAP_FUNCTIONS_DIR={}", dir.display());
}
