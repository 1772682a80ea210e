//! Percent-encoding, as Python's `urllib.parse.quote(s, safe='~')` does it
//! (what Huawei's request signer and S3-style object URLs expect), through
//! the `percent-encoding` crate.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Encodes all but ASCII letters, digits and `-._~` (RFC 3986 unreserved).
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// [`UNRESERVED`] keeping `/`: an object key as a URL path.
pub const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Percent-encodes `s` (uppercase hex), leaving what `set` does not name.
pub fn percent_encode(s: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(s, set).to_string()
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
pub fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode() {
        assert_eq!(percent_encode("a b/c~+", UNRESERVED), "a%20b%2Fc~%2B");
        assert_eq!(percent_encode("a b/c", PATH), "a%20b/c");
        assert_eq!(percent_encode("ü", UNRESERVED), "%C3%BC");
        assert_eq!(percent_decode("a%20b%zz%2"), "a b%zz%2");
        assert_eq!(percent_decode("%+F"), "%+F");
    }
}
