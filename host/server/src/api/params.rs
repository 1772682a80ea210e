//! Query parameters with precise errors.

use super::error::ApiError;

/// Query parameters, percent-decoded.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(q: &str) -> Result<Self, ApiError> {
        let pairs = q
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (crate::encoding::percent_decode(k), crate::encoding::percent_decode(&v.replace('+', " ")))
            })
            .collect();
        Ok(Self(pairs))
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }

    pub(super) fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()).collect()
    }

    pub(super) fn required(&self, key: &str) -> Result<String, ApiError> {
        self.get(key).ok_or_else(|| ApiError::invalid(format!("{key}: required")))
    }

    pub(super) fn integer(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let n: i64 = v.parse().map_err(|_| ApiError::invalid(format!("{key}: '{v}' is not an integer")))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else if max == i64::MAX {
            Err(ApiError::invalid(format!("{key}: must be at least {min}")))
        } else {
            Err(ApiError::invalid(format!("{key}: {n} is outside {min}-{max}")))
        }
    }

    /// `limit` (1 to `max_limit`, default `default_limit`) and `offset`.
    pub(super) fn page(&self, default_limit: i64, max_limit: i64) -> Result<crate::control::Page, ApiError> {
        let limit = self.integer("limit", default_limit, 1, max_limit)?;
        let offset = self.integer("offset", 0, 0, i64::MAX)?;
        Ok(crate::control::Page { limit: limit as usize, offset: usize::try_from(offset).unwrap_or(usize::MAX) })
    }
}
