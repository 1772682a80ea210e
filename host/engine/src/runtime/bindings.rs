//! Host-side bindings of the `livesnap:snapshot` WIT package, one module per
//! world, sharing the `types` interface.

#![allow(missing_docs)]

/// The storer world (also owns the shared `types`).
pub mod storer {
    wasmtime::component::bindgen!({ path: "../../functions/wit", world: "storer" });
}

/// The encoder world.
pub mod encoder {
    wasmtime::component::bindgen!({
        path: "../../functions/wit",
        world: "encoder",
        with: { "livesnap:snapshot/types": super::storer::livesnap::snapshot::types },
    });
}

/// The notifier world.
pub mod notifier {
    wasmtime::component::bindgen!({
        path: "../../functions/wit",
        world: "notifier",
        with: { "livesnap:snapshot/types": super::storer::livesnap::snapshot::types },
    });
}

pub use storer::livesnap::snapshot::types;
