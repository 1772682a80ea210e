//! The RTMP handshake, server side (the plain version; publishers such as
//! ffmpeg and OBS do not require the digest variant from a server).

/// C0 + C1, and S0 + S1 + S2, and C2.
pub const C0C1_LEN: usize = 1 + 1536;
/// C2.
pub const C2_LEN: usize = 1536;

/// Answers C0+C1 with S0+S1+S2; `None` when C0 is not RTMP version 3.
pub fn respond(c0c1: &[u8; C0C1_LEN], server_time: u32) -> Option<Vec<u8>> {
    if c0c1[0] != 3 {
        return None;
    }
    let c1 = &c0c1[1..];
    let mut out = Vec::with_capacity(1 + 2 * 1536);
    out.push(3);
    // S1: time, four zero bytes, then bytes of our choosing.
    out.extend_from_slice(&server_time.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend((0..1528u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    // S2 echoes C1 with the time we read it at.
    out.extend_from_slice(&c1[..4]);
    out.extend_from_slice(&server_time.to_be_bytes());
    out.extend_from_slice(&c1[8..]);
    Some(out)
}
