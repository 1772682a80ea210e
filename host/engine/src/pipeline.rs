//! One snapshot through the functions: encode → store → notify, then the
//! callback handed to delivery.

use std::sync::Arc;

use crate::config::template::WriteMode;
use crate::config::{Config, Template};
use crate::decode::Picture;
use crate::delivery::{Callback, Delivery};
use crate::runtime::bindings::types;
use crate::runtime::{CallLimits, ComponentGrants, Runtime, RuntimeError, Source, Stage};

/// Looks up a built-in component's bytes by name. The binary supplies the
/// embedded ones (crate livesnap-builtins), so this crate builds no Wasm.
pub type Builtins = fn(&str) -> Option<&'static [u8]>;

/// No built-ins: templates must name components that are loaded.
pub fn no_builtins(_: &str) -> Option<&'static [u8]> {
    None
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A template names a component the manifest does not have.
    #[error(
        "template for domain '{domain}' app '{app}' names component '{name}', which is not among the project's uploaded functions, the manifest's components or the built-ins"
    )]
    Missing {
        /// Template domain.
        domain: String,
        /// Template app.
        app: String,
        /// The name.
        name: String,
    },
    /// A component failed to compile or does not fit its stage.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// A stored snapshot.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Where it went.
    pub stored: types::StoredObject,
    /// Image size.
    pub width: u32,
    /// Image size.
    pub height: u32,
    /// Encoded bytes.
    pub bytes: usize,
    /// Whether a callback was queued.
    pub callback: bool,
}

/// Runs snapshots through a template's functions.
pub struct Pipeline {
    runtime: Arc<Runtime>,
    delivery: Delivery,
    builtins: Builtins,
}

impl Pipeline {
    /// Loads every component the templates use and checks each against its
    /// stage's world, so a bad manifest fails at start, not at a snapshot.
    pub fn new(config: &Config, runtime: Arc<Runtime>, delivery: Delivery, builtins: Builtins) -> Result<Self, SetupError> {
        let pipeline = Self { runtime, delivery, builtins };
        pipeline.load(config)?;
        Ok(pipeline)
    }

    /// Loads what `config` needs: the manifest's components are read again
    /// (recompiling only what changed, by content), built-ins once.
    pub fn load(&self, config: &Config) -> Result<(), SetupError> {
        config.templates.iter().try_for_each(|t| self.load_template(config, t))
    }

    /// Loads and prepares the components of one template of `config`:
    /// the manifest's by its `source` and grants, uploaded modules as they
    /// are, built-ins by name.
    pub fn load_template(&self, config: &Config, t: &Template) -> Result<(), SetupError> {
        for (stage, name) in t.components() {
            match config.manifest.components.get(name) {
                Some(decl) => {
                    let grants = ComponentGrants {
                        allowed_outbound_hosts: decl.allowed_outbound_hosts.clone(),
                        environment: decl.environment.clone().into_iter().collect(),
                    };
                    self.runtime.load(name, Source::File(&decl.source), grants)?;
                }
                // Uploaded modules, and built-ins loaded before.
                None if self.runtime.has_component(name) => {}
                None => {
                    let bytes = (self.builtins)(name).ok_or_else(|| SetupError::Missing {
                        domain: t.domain.clone(),
                        app: t.app_name.clone(),
                        // As the project named it, not as the runtime keys it.
                        name: name.rsplit('/').next().unwrap_or(name).into(),
                    })?;
                    self.runtime.load(name, Source::Bytes(bytes), ComponentGrants::default())?;
                }
            }
            self.runtime.prepare(name, stage)?;
        }
        Ok(())
    }

    /// Callback deliveries finished so far.
    pub fn delivery_stats(&self) -> crate::delivery::DeliveryStats {
        self.delivery.stats()
    }

    /// Encodes, stores and notifies one picture of stream `id`.
    /// `stored` sees the outcome before its callback is queued, so what it
    /// records is visible by the time the receiver hears of the snapshot.
    pub fn run(
        &self,
        t: &Template,
        id: &types::StreamId,
        picture: Picture,
        captured_at: types::CaptureTime,
        stored_hook: &mut dyn FnMut(&Outcome),
    ) -> Result<Outcome, RuntimeError> {
        let limits = CallLimits { timeout: t.function_timeout, memory: t.function_memory };
        let frame =
            types::Frame { width: picture.width, height: picture.height, pts_ms: picture.pts_ms, y: picture.y, u: picture.u, v: picture.v };
        let image = self.runtime.encode(&t.encode, frame, t.image_quality, limits)?;
        let wit = wit_template(t);
        let stored = self.runtime.store_image(&t.store, id, &wit, &image, captured_at, limits)?;
        let snapshot =
            types::Snapshot { id: id.clone(), image_width: image.width, image_height: image.height, captured_at, stored: stored.clone() };
        let now = crate::time::unix_secs();
        let request = self.runtime.notify(&t.notify, &snapshot, &wit, now, limits)?;
        if let Some(r) = &request {
            self.check_callback_url(t, &r.url)?;
        }
        let outcome = Outcome { stored, width: image.width, height: image.height, bytes: image.data.len(), callback: request.is_some() };
        stored_hook(&outcome);
        if let Some(r) = request {
            let info = ResignInfo::of(&snapshot, &t.owner);
            self.delivery.send(Callback {
                id: info.id(),
                url: r.url,
                headers: r.headers,
                body: r.body,
                resign: Some(serde_json::to_string(&info).expect("resign info serializes")),
                project: t.owner.clone(),
            });
        }
        Ok(outcome)
    }

    /// A notifier may send to its template's `call_back_url`, or to what its
    /// component's `allowed_outbound_hosts` lists; anything else is refused
    /// before it reaches the outbox (the egress policy then applies to both).
    fn check_callback_url(&self, t: &Template, url: &str) -> Result<(), RuntimeError> {
        if t.callback_url.as_deref() == Some(url) {
            return Ok(());
        }
        let refused = |why: &str| RuntimeError::Failed {
            stage: Stage::Notify,
            name: t.notify.clone(),
            message: format!("the callback URL it returned {why}"),
        };
        let parsed = url::Url::parse(url).map_err(|_| refused("is not a valid URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refused("must be http(s) without credentials"));
        }
        let host = parsed.host_str().unwrap_or("").trim_matches(|c| c == '[' || c == ']').to_string();
        let port = parsed.port_or_known_default().unwrap_or(0);
        let grants = self.runtime.grants(&t.notify);
        if grants.allowed_outbound_hosts.iter().any(|p| crate::runtime::outbound::outbound_allowed(p, parsed.scheme(), &host, port)) {
            Ok(())
        } else {
            Err(refused("is neither the template's call_back_url nor in the component's allowed_outbound_hosts"))
        }
    }

    /// The callback outbox.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Asks the notifier again for a retry of a callback, so a signed body
    /// gets a fresh `auth_timestamp` and a signature that matches it.
    pub fn resign(&self, t: &Template, resign: &str) -> Option<crate::delivery::Resigned> {
        let info: ResignInfo = serde_json::from_str(resign).ok()?;
        let snapshot = info.snapshot();
        let limits = CallLimits { timeout: t.function_timeout, memory: t.function_memory };
        let now = crate::time::unix_secs();
        match self.runtime.notify(&t.notify, &snapshot, &wit_template(t), now, limits) {
            Ok(Some(r)) => Some((r.url, r.headers, r.body)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("re-signing a callback failed; resending the previous body: {e}");
                None
            }
        }
    }

    /// Waits until no callback is pending; returns delivered and failed counts.
    pub fn finish(&self) -> crate::delivery::DeliveryStats {
        self.delivery.finish()
    }
}

/// What a retry needs to ask the notifier again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ResignInfo {
    /// Domain.
    pub domain: String,
    /// App.
    pub app: String,
    /// Stream.
    pub stream: String,
    width: u32,
    height: u32,
    unix_ms: u64,
    utc_offset_secs: i32,
    bucket: String,
    location: String,
    object: String,
    url: String,
    /// The owner key of the template's project (outbox rows from before
    /// projects are the default project's).
    #[serde(default = "default_owner")]
    pub owner: String,
}

fn default_owner() -> String {
    crate::project::DEFAULT.into()
}

impl ResignInfo {
    fn of(s: &types::Snapshot, owner: &str) -> Self {
        Self {
            owner: owner.into(),
            domain: s.id.domain.clone(),
            app: s.id.app.clone(),
            stream: s.id.stream.clone(),
            width: s.image_width,
            height: s.image_height,
            unix_ms: s.captured_at.unix_ms,
            utc_offset_secs: s.captured_at.utc_offset_secs,
            bucket: s.stored.bucket.clone(),
            location: s.stored.location.clone(),
            object: s.stored.object.clone(),
            url: s.stored.url.clone(),
        }
    }

    fn snapshot(&self) -> types::Snapshot {
        types::Snapshot {
            id: types::StreamId { domain: self.domain.clone(), app: self.app.clone(), stream: self.stream.clone() },
            image_width: self.width,
            image_height: self.height,
            captured_at: types::CaptureTime { unix_ms: self.unix_ms, utc_offset_secs: self.utc_offset_secs },
            stored: types::StoredObject {
                bucket: self.bucket.clone(),
                location: self.location.clone(),
                object: self.object.clone(),
                url: self.url.clone(),
            },
        }
    }

    /// The snapshot's stable id: 32 hex characters of a SHA-256 over what
    /// identifies it.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let key = format!("{}/{}/{}/{}/{}/{}", self.domain, self.app, self.stream, self.bucket, self.object, self.unix_ms);
        hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
    }
}

/// The template as the functions see it.
pub fn wit_template(t: &Template) -> types::Template {
    types::Template {
        domain: t.domain.clone(),
        app_name: t.app_name.clone(),
        time_interval: t.interval.as_secs() as u32,
        object_write_mode: match t.write_mode {
            WriteMode::Full => types::WriteMode::Full,
            WriteMode::Instant => types::WriteMode::Instant,
        },
        bucket: t.bucket.clone(),
        location: t.location.clone(),
        object_prefix: t.object_prefix.clone(),
        call_back_enable: t.callback_url.is_some(),
        call_back_url: t.callback_url.clone().unwrap_or_default(),
        auth_key: t.auth_key.clone(),
        auth_validity_secs: t.auth_validity.as_secs() as u32,
        image_object_format: t.image_object_format.clone(),
        image_access_protocol: t.image_access_protocol.clone(),
        image_access_domain: t.image_access_domain.clone(),
    }
}

/// The host's UTC offset at `unix_secs`, for `{fmt_time_local}`.
pub fn utc_offset_secs(unix_secs: i64) -> i32 {
    let t = unix_secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() { 0 } else { tm.tm_gmtoff as i32 }
    }
}
