//! Eight-lane arithmetic for the DCT: explicit Wasm SIMD128 in the
//! components, the same operations in SSE2 on x86-64 (so the native
//! comparison in scripts/bench is like for like), plain arrays elsewhere.
//! Left to auto-vectorisation, the wasm32 backend kept every lane scalar
//! (2.2× slower than this).

/// 1.5 × 2²³: adding it leaves round-to-nearest of a small float in the low
/// mantissa bits, which vectorises where `f32::round` is a libm call.
#[cfg(any(test, not(target_arch = "x86_64")))]
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Transposes an 8×8 block held as two four-lane halves per row: each 4×4
/// quadrant through `t4`, the off-diagonal quadrants swapped.
#[cfg(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"))]
#[inline(always)]
fn by_quadrants<V: Copy>(d: [[V; 2]; 8], t4: impl Fn(V, V, V, V) -> [V; 4]) -> [[V; 2]; 8] {
    let top_left = t4(d[0][0], d[1][0], d[2][0], d[3][0]);
    let top_right = t4(d[0][1], d[1][1], d[2][1], d[3][1]);
    let bottom_left = t4(d[4][0], d[5][0], d[6][0], d[7][0]);
    let bottom_right = t4(d[4][1], d[5][1], d[6][1], d[7][1]);
    std::array::from_fn(|i| if i < 4 { [top_left[i], bottom_left[i]] } else { [top_right[i - 4], bottom_right[i - 4]] })
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    use super::ROUND_MAGIC;

    /// Eight f32 lanes.
    #[derive(Clone, Copy)]
    pub struct Row(v128, v128);

    impl Row {
        pub const ZERO: Row = Row(f32x4(0.0, 0.0, 0.0, 0.0), f32x4(0.0, 0.0, 0.0, 0.0));

        #[inline(always)]
        pub fn from_array(a: [f32; 8]) -> Row {
            Row(f32x4(a[0], a[1], a[2], a[3]), f32x4(a[4], a[5], a[6], a[7]))
        }

        /// Eight samples minus 128.
        #[inline(always)]
        pub fn level_shifted(p: &[u8; 8]) -> Row {
            // SAFETY: reads exactly the eight bytes `p` borrows.
            let wide = unsafe { u16x8_load_extend_u8x8(p.as_ptr()) };
            let bias = f32x4_splat(128.0);
            Row(
                f32x4_sub(f32x4_convert_i32x4(u32x4_extend_low_u16x8(wide)), bias),
                f32x4_sub(f32x4_convert_i32x4(u32x4_extend_high_u16x8(wide)), bias),
            )
        }

        #[inline(always)]
        pub fn add(self, b: Row) -> Row {
            Row(f32x4_add(self.0, b.0), f32x4_add(self.1, b.1))
        }

        #[inline(always)]
        pub fn sub(self, b: Row) -> Row {
            Row(f32x4_sub(self.0, b.0), f32x4_sub(self.1, b.1))
        }

        #[inline(always)]
        pub fn scale(self, k: f32) -> Row {
            let k = f32x4_splat(k);
            Row(f32x4_mul(self.0, k), f32x4_mul(self.1, k))
        }

        /// Multiplies by `recip` and rounds to the nearest integer.
        #[inline(always)]
        pub fn quantize(self, recip: Row, out: &mut [i16; 8]) {
            let magic = f32x4_splat(ROUND_MAGIC);
            let bits = i32x4_splat(ROUND_MAGIC.to_bits() as i32);
            let lo = i32x4_sub(f32x4_add(f32x4_mul(self.0, recip.0), magic), bits);
            let hi = i32x4_sub(f32x4_add(f32x4_mul(self.1, recip.1), magic), bits);
            // SAFETY: writes exactly the sixteen bytes `out` borrows.
            unsafe { v128_store(out.as_mut_ptr().cast(), i16x8_narrow_i32x4(lo, hi)) }
        }
    }

    /// Transposes an 8×8 block (see `by_quadrants`).
    #[inline(always)]
    pub fn transpose(d: &mut [Row; 8]) {
        let q = |a: v128, b: v128, c: v128, e: v128| {
            let t0 = i32x4_shuffle::<0, 4, 1, 5>(a, b);
            let t1 = i32x4_shuffle::<2, 6, 3, 7>(a, b);
            let t2 = i32x4_shuffle::<0, 4, 1, 5>(c, e);
            let t3 = i32x4_shuffle::<2, 6, 3, 7>(c, e);
            [i64x2_shuffle::<0, 2>(t0, t2), i64x2_shuffle::<1, 3>(t0, t2), i64x2_shuffle::<0, 2>(t1, t3), i64x2_shuffle::<1, 3>(t1, t3)]
        };
        *d = super::by_quadrants(d.map(|r| [r.0, r.1]), q).map(|[lo, hi]| Row(lo, hi));
    }

    /// Bit k set where `zz[k]` is non-zero.
    #[inline(always)]
    pub fn nonzero_mask(zz: &[i16; 64]) -> u64 {
        let mut mask = 0u64;
        for (i, chunk) in zz.chunks_exact(8).enumerate() {
            // SAFETY: `chunk` is exactly eight i16, sixteen bytes.
            let v = unsafe { v128_load(chunk.as_ptr().cast()) };
            let zero = u64::from(i16x8_bitmask(i16x8_eq(v, i16x8_splat(0))));
            mask |= (zero ^ 0xFF) << (i * 8);
        }
        mask
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// Eight f32 lanes.
    #[derive(Clone, Copy)]
    pub struct Row(__m128, __m128);

    // SAFETY (whole module): SSE2 is part of the x86-64 baseline, and every
    // load and store below touches exactly the bytes of the reference it is given.
    impl Row {
        // SAFETY: all-zero bytes are a valid __m128, 0.0 in every lane.
        pub const ZERO: Row = unsafe { std::mem::zeroed() };

        #[inline(always)]
        pub fn from_array(a: [f32; 8]) -> Row {
            unsafe { Row(_mm_loadu_ps(a.as_ptr()), _mm_loadu_ps(a.as_ptr().add(4))) }
        }

        /// Eight samples minus 128.
        #[inline(always)]
        pub fn level_shifted(p: &[u8; 8]) -> Row {
            unsafe {
                let zero = _mm_setzero_si128();
                let wide = _mm_unpacklo_epi8(_mm_loadl_epi64(p.as_ptr().cast()), zero);
                let bias = _mm_set1_ps(128.0);
                Row(
                    _mm_sub_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(wide, zero)), bias),
                    _mm_sub_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(wide, zero)), bias),
                )
            }
        }

        #[inline(always)]
        pub fn add(self, b: Row) -> Row {
            unsafe { Row(_mm_add_ps(self.0, b.0), _mm_add_ps(self.1, b.1)) }
        }

        #[inline(always)]
        pub fn sub(self, b: Row) -> Row {
            unsafe { Row(_mm_sub_ps(self.0, b.0), _mm_sub_ps(self.1, b.1)) }
        }

        #[inline(always)]
        pub fn scale(self, k: f32) -> Row {
            unsafe {
                let k = _mm_set1_ps(k);
                Row(_mm_mul_ps(self.0, k), _mm_mul_ps(self.1, k))
            }
        }

        /// Multiplies by `recip` and rounds to the nearest integer (the
        /// default MXCSR mode, as the Wasm path's magic-number rounding).
        #[inline(always)]
        pub fn quantize(self, recip: Row, out: &mut [i16; 8]) {
            unsafe {
                let lo = _mm_cvtps_epi32(_mm_mul_ps(self.0, recip.0));
                let hi = _mm_cvtps_epi32(_mm_mul_ps(self.1, recip.1));
                _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_packs_epi32(lo, hi));
            }
        }
    }

    /// Transposes an 8×8 block (see `by_quadrants`).
    #[inline(always)]
    pub fn transpose(d: &mut [Row; 8]) {
        let q = |a: __m128, b: __m128, c: __m128, e: __m128| unsafe {
            let t0 = _mm_unpacklo_ps(a, b);
            let t1 = _mm_unpackhi_ps(a, b);
            let t2 = _mm_unpacklo_ps(c, e);
            let t3 = _mm_unpackhi_ps(c, e);
            [_mm_movelh_ps(t0, t2), _mm_movehl_ps(t2, t0), _mm_movelh_ps(t1, t3), _mm_movehl_ps(t3, t1)]
        };
        *d = super::by_quadrants(d.map(|r| [r.0, r.1]), q).map(|[lo, hi]| Row(lo, hi));
    }

    /// Bit k set where `zz[k]` is non-zero.
    #[inline(always)]
    pub fn nonzero_mask(zz: &[i16; 64]) -> u64 {
        let mut mask = 0u64;
        for (i, pair) in zz.chunks_exact(16).enumerate() {
            let zero = unsafe {
                let z = _mm_setzero_si128();
                let a = _mm_cmpeq_epi16(_mm_loadu_si128(pair.as_ptr().cast()), z);
                let b = _mm_cmpeq_epi16(_mm_loadu_si128(pair.as_ptr().add(8).cast()), z);
                _mm_movemask_epi8(_mm_packs_epi16(a, b)) as u64
            };
            mask |= (zero ^ 0xFFFF) << (i * 16);
        }
        mask
    }
}

/// The reference for the SIMD paths (and the path on other targets).
#[cfg_attr(test, allow(dead_code))]
#[cfg(any(test, not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"))))]
mod portable {
    use super::ROUND_MAGIC;

    /// Eight f32 lanes.
    #[derive(Clone, Copy)]
    pub struct Row([f32; 8]);

    impl Row {
        pub const ZERO: Row = Row([0.0; 8]);

        #[inline(always)]
        pub fn from_array(a: [f32; 8]) -> Row {
            Row(a)
        }

        /// Eight samples minus 128.
        #[inline(always)]
        pub fn level_shifted(p: &[u8; 8]) -> Row {
            Row(p.map(|v| f32::from(v) - 128.0))
        }

        #[inline(always)]
        pub fn add(self, b: Row) -> Row {
            Row(std::array::from_fn(|i| self.0[i] + b.0[i]))
        }

        #[inline(always)]
        pub fn sub(self, b: Row) -> Row {
            Row(std::array::from_fn(|i| self.0[i] - b.0[i]))
        }

        #[inline(always)]
        pub fn scale(self, k: f32) -> Row {
            Row(self.0.map(|v| v * k))
        }

        /// Multiplies by `recip` and rounds to the nearest integer.
        #[inline(always)]
        pub fn quantize(self, recip: Row, out: &mut [i16; 8]) {
            for ((o, v), r) in out.iter_mut().zip(self.0).zip(recip.0) {
                let biased = v * r + ROUND_MAGIC;
                *o = (biased.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32) as i16;
            }
        }
    }

    #[inline(always)]
    pub fn transpose(d: &mut [Row; 8]) {
        for r in 0..8 {
            for c in r + 1..8 {
                let t = d[r].0[c];
                d[r].0[c] = d[c].0[r];
                d[c].0[r] = t;
            }
        }
    }

    /// Bit k set where `zz[k]` is non-zero.
    #[inline(always)]
    pub fn nonzero_mask(zz: &[i16; 64]) -> u64 {
        zz.iter().enumerate().fold(0, |m, (k, &c)| m | (u64::from(c != 0) << k))
    }
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
pub use portable::{Row, nonzero_mask, transpose};
#[cfg(target_arch = "x86_64")]
pub use sse2::{Row, nonzero_mask, transpose};
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use wasm::{Row, nonzero_mask, transpose};

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{portable, sse2};

    /// The DCT's operations on pseudo-random blocks through both paths, bit
    /// for bit: the same IEEE operations in the same order, the same rounding.
    #[test]
    fn sse2_matches_the_portable_reference() {
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for _ in 0..200 {
            let pixels: [[u8; 8]; 8] = std::array::from_fn(|_| std::array::from_fn(|_| next() as u8));
            let recip: [f32; 8] = std::array::from_fn(|_| 1.0 / (1 + next() % 60) as f32);
            let mut a = pixels.map(|p| sse2::Row::level_shifted(&p));
            let mut b = pixels.map(|p| portable::Row::level_shifted(&p));
            for i in 0..8 {
                a[i] = a[i].add(a[7 - i]).sub(sse2::Row::from_array(recip)).scale(1.306_563);
                b[i] = b[i].add(b[7 - i]).sub(portable::Row::from_array(recip)).scale(1.306_563);
            }
            sse2::transpose(&mut a);
            portable::transpose(&mut b);
            for (ra, rb) in a.iter().zip(&b) {
                let (mut qa, mut qb) = ([0i16; 8], [0i16; 8]);
                ra.quantize(sse2::Row::from_array(recip), &mut qa);
                rb.quantize(portable::Row::from_array(recip), &mut qb);
                assert_eq!(qa, qb);
                let zz: [i16; 64] = std::array::from_fn(|k| qa[k % 8] * (k % 3) as i16);
                assert_eq!(sse2::nonzero_mask(&zz), portable::nonzero_mask(&zz));
            }
        }
    }
}
