//! The stages a component can serve: the three snapshot stages, each a WIT
//! world with a built-in default, and `[[trigger.http]]` routes. The one
//! list every other module iterates.

/// A stage, and the world its component must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// World `encoder`.
    Encode,
    /// World `storer`.
    Store,
    /// World `notifier`.
    Notify,
    /// `wasi:http/incoming-handler` (a `[[trigger.http]]` route).
    Http,
}

impl Stage {
    /// The snapshot stages, in the order a snapshot runs them.
    pub const SNAPSHOT: [Stage; 3] = [Stage::Encode, Stage::Store, Stage::Notify];
    /// Every stage.
    pub const ALL: [Stage; 4] = [Stage::Encode, Stage::Store, Stage::Notify, Stage::Http];

    /// The world (or interface) its component must export.
    pub fn world(self) -> &'static str {
        match self {
            Stage::Encode => "encoder",
            Stage::Store => "storer",
            Stage::Notify => "notifier",
            Stage::Http => "http",
        }
    }

    /// The built-in component a template uses when it names none (HTTP
    /// routes always name theirs: "").
    pub fn default_component(self) -> &'static str {
        match self {
            Stage::Encode => "encode-jpeg",
            Stage::Store => "store-obs",
            Stage::Notify => "notify-callback",
            Stage::Http => "",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Encode => "encode",
            Stage::Store => "store",
            Stage::Notify => "notify",
            Stage::Http => "http",
        })
    }
}
