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
/// Huawei Live's documented error codes (its API reference's error code
/// table and per-operation examples), and its API gateway's for
/// authentication and throttling.
pub mod codes {
    /// 400: a request parameter or body field is invalid ("Request Illegal").
    pub const INVALID: &str = "LIVE.100011001";
    /// 401: the gateway refused the credentials (API gateway code).
    pub const UNAUTHORIZED: &str = "APIGW.0301";
    /// 404: the resource to access does not exist.
    pub const NOT_FOUND: &str = "LIVE.103011019";
    /// 400: the resource already exists.
    pub const EXISTS: &str = "LIVE.103011018";
    /// 400: the operation is not allowed in the resource's current state
    /// (in use, or defined in the manifest).
    pub const NOT_ALLOWED: &str = "LIVE.103011022";
    /// 400: a quota is used up (Huawei's "maximum number reached").
    pub const QUOTA: &str = "LIVE.103011020";
    /// 429: too many failed authentications from the client's address
    /// (the API gateway's throttling code).
    pub const THROTTLED: &str = "APIGW.0308";
    /// 500 (and 503): server internal error, retry later.
    pub const INTERNAL: &str = "LIVE.100011005";
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
    /// 400: not allowed in the resource's state (in use, read-only).
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: codes::NOT_ALLOWED, message: message.into() }
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: codes::NOT_FOUND, message: message.into() }
    }
    /// 400: it exists already.
    pub fn exists(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: codes::EXISTS, message: message.into() }
    }
    /// 413 (the body is an invalid request; Huawei documents no code of its own).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self { status: StatusCode::PAYLOAD_TOO_LARGE, code: codes::INVALID, message: message.into() }
    }
    /// 400 for a used-up quota.
    pub fn quota(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: codes::QUOTA, message: message.into() }
    }
    /// 408: the body did not arrive in time (an invalid request).
    pub fn timeout(message: impl Into<String>) -> Self {
        Self { status: StatusCode::REQUEST_TIMEOUT, code: codes::INVALID, message: message.into() }
    }
    /// 429: too many failed authentications.
    pub fn throttled(message: impl Into<String>) -> Self {
        Self { status: StatusCode::TOO_MANY_REQUESTS, code: codes::THROTTLED, message: message.into() }
    }
    /// 503: busy; retry later.
    pub fn busy(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: codes::INTERNAL, message: message.into() }
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
            C::Conflict(m) => Self::exists(m),
            C::InUse(m) | C::ReadOnly(m) => Self::not_allowed(m),
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
