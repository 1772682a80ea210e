//! Builds every component of `functions/` (built-ins, examples, the hostile
//! test components) into OUT_DIR, so each exists before the tests run.

#[path = "../builtins/wasm_build.rs"]
mod wasm_build;

fn main() {
    let dir = wasm_build::build(&[]);
    println!("cargo:rustc-env=LIVESNAP_TEST_COMPONENTS={}", dir.display());
}
