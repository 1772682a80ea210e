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

/// C0 + C1 of a client: version 3, our time, four zero bytes, filler.
pub fn client_c0c1(client_time: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(C0C1_LEN);
    out.push(3);
    out.extend_from_slice(&client_time.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend((0..1528u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 24) as u8));
    out
}

/// S0 + S1 + S2, what a server answers C0 + C1 with.
pub const S0S1S2_LEN: usize = 1 + 2 * 1536;

/// Checks a server's S0+S1+S2 and makes C2 (S1 echoed with the time we
/// read it at); `None` when S0 is not RTMP version 3.
pub fn client_c2(s0s1s2: &[u8; S0S1S2_LEN], client_time: u32) -> Option<Vec<u8>> {
    if s0s1s2[0] != 3 {
        return None;
    }
    let s1 = &s0s1s2[1..1 + 1536];
    let mut out = Vec::with_capacity(C2_LEN);
    out.extend_from_slice(&s1[..4]);
    out.extend_from_slice(&client_time.to_be_bytes());
    out.extend_from_slice(&s1[8..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_sides_agree() {
        let c0c1: [u8; C0C1_LEN] = client_c0c1(7).try_into().unwrap();
        let s: [u8; S0S1S2_LEN] = respond(&c0c1, 9).unwrap().try_into().unwrap();
        let c2 = client_c2(&s, 11).unwrap();
        assert_eq!(c2.len(), C2_LEN);
        assert_eq!(&c2[..4], &9u32.to_be_bytes());
        assert_eq!(&c2[8..], &s[1 + 8..1 + 1536]);
        let mut bad = s;
        bad[0] = 6;
        assert!(client_c2(&bad, 0).is_none());
    }
}
