//! API errors: an HTTP status and Huawei's `{"error_code","error_msg"}` body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `LIVE.…` (or `APIGW.…`) code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

/// Error codes (documented in the README and /openapi.json).
pub mod codes {
    /// A request parameter or body field is invalid.
    pub const INVALID: &str = "LIVE.100011001";
    /// Authentication failed.
    pub const UNAUTHORIZED: &str = "LIVE.100011002";
    /// The resource is read-only (defined in the manifest).
    pub const FORBIDDEN: &str = "LIVE.100011003";
    /// No such resource.
    pub const NOT_FOUND: &str = "LIVE.100011004";
    /// The resource already exists.
    pub const CONFLICT: &str = "LIVE.100011005";
    /// The body is too large.
    pub const TOO_LARGE: &str = "LIVE.100011006";
    /// The body did not arrive in time.
    pub const TIMEOUT: &str = "LIVE.100011008";
    /// Too many failed authentications from the client's address (Huawei
    /// API gateway's throttling code).
    pub const THROTTLED: &str = "APIGW.0308";
    /// The server is busy with other requests; retry later.
    pub const BUSY: &str = "LIVE.100011503";
    /// A quota of the project is used up.
    pub const QUOTA: &str = "LIVE.100011007";
    /// The server failed.
    pub const INTERNAL: &str = "LIVE.100011500";
}

impl ApiError {
    /// 400 for an invalid field or parameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: codes::INVALID, message: message.into() }
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: codes::UNAUTHORIZED, message: message.into() }
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: codes::FORBIDDEN, message: message.into() }
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: codes::NOT_FOUND, message: message.into() }
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, code: codes::CONFLICT, message: message.into() }
    }
    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self { status: StatusCode::PAYLOAD_TOO_LARGE, code: codes::TOO_LARGE, message: message.into() }
    }
    /// 403 for a used-up quota.
    pub fn quota(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: codes::QUOTA, message: message.into() }
    }
    /// 408: the body did not arrive in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self { status: StatusCode::REQUEST_TIMEOUT, code: codes::TIMEOUT, message: message.into() }
    }
    /// 429: too many failed authentications.
    pub fn throttled(message: impl Into<String>) -> Self {
        Self { status: StatusCode::TOO_MANY_REQUESTS, code: codes::THROTTLED, message: message.into() }
    }
    /// 503: busy; retry later.
    pub fn busy(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: codes::BUSY, message: message.into() }
    }
    /// 500; the cause is logged, not returned.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("API request failed: {cause}");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, code: codes::INTERNAL, message: "internal error".into() }
    }
}

impl From<crate::control::ControlError> for ApiError {
    fn from(e: crate::control::ControlError) -> Self {
        use crate::control::ControlError as C;
        match e {
            C::Invalid(m) => Self::invalid(m),
            C::Conflict(m) => Self::conflict(m),
            C::ReadOnly(m) => Self::forbidden(m),
            C::NotFound(m) => Self::not_found(m),
            C::Quota(m) => Self::quota(m),
            C::Unavailable(m) => Self::busy(m),
            C::Db(cause) => Self::internal(cause),
            C::Failed(cause) => Self::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error_code": self.code, "error_msg": self.message}))).into_response()
    }
}
