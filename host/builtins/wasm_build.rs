//! Builds components of the `functions/` workspace for wasm32-wasip2 and
//! copies them into the calling build script's `OUT_DIR` (the pattern of
//! wasmtime's `test-programs/artifacts`). Shared by the build scripts of
//! livesnap-builtins and livesnap-test-programs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (all of the workspace when empty) and copies every
/// `.wasm` they make into `OUT_DIR/components`; returns that folder.
pub fn build(packages: &[&str]) -> PathBuf {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let functions = manifest_dir.join("../../functions");
    watch(&functions);
    // The functions' own target folder, shared with `livesnap build`, so the
    // repository spin.toml's `source` paths exist after a host build.
    let target = functions.join("target");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(&functions).args(["build", "--release", "--target", "wasm32-wasip2"]).env("CARGO_TARGET_DIR", &target);
    if packages.is_empty() {
        cargo.arg("--workspace");
    }
    for p in packages {
        cargo.args(["-p", p]);
    }
    // Settings meant for the host build must not leak into the guests'.
    for (key, _) in std::env::vars() {
        let cargo_setting = key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR";
        // clippy runs as a workspace wrapper: the guests (wit-bindgen's
        // generated code) get their own clippy run in scripts/test.
        let wrapper = matches!(key.as_str(), "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "CLIPPY_ARGS" | "CLIPPY_CONF_DIR");
        if cargo_setting || wrapper {
            cargo.env_remove(&key);
        }
    }
    let status = cargo.status().expect("running cargo for the functions");
    if !status.success() {
        panic!(
            "building functions/ for wasm32-wasip2 failed; if the target is missing run \
             `rustup target add wasm32-wasip2` (scripts/setup does)"
        );
    }
    let built = target.join("wasm32-wasip2").join("release");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("components");
    std::fs::create_dir_all(&out).unwrap();
    let wanted: Vec<String> = packages.iter().map(|p| format!("{}.wasm", p.replace('-', "_"))).collect();
    for entry in std::fs::read_dir(&built).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".wasm") && (wanted.is_empty() || wanted.contains(&name)) {
            std::fs::copy(entry.path(), out.join(&name)).unwrap();
        }
    }
    out
}

fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
