//! The forward DCT and quantisation of one 8×8 block.
//!
//! Arai–Agui–Nakajima in f32 (libjpeg's jfdctflt) over rows of eight lanes,
//! so each step transforms eight columns at once. The AAN output scale is
//! folded into the quantiser, as libjpeg does.

use crate::lanes::{Row, transpose};

/// Reciprocal quantisers in the transposed order the DCT produces, with the
/// AAN scale factors and the ×8 of the 2-D transform folded in.
pub struct Quantizer {
    recip: [Row; 8],
}

impl Quantizer {
    /// `table` holds the 64 quantiser steps in natural (row-major) order.
    pub fn new(table: &[u16; 64]) -> Self {
        const AAN: [f64; 8] = [1.0, 1.387_039_845, 1.306_562_965, 1.175_875_602, 1.0, 0.785_694_958, 0.541_196_100, 0.275_899_379];
        // Coefficient (u = vertical, v = horizontal) lands in row v, lane u.
        let recip = std::array::from_fn(|v| {
            Row::from_array(std::array::from_fn(|u| (1.0 / (f64::from(table[u * 8 + v]) * AAN[u] * AAN[v] * 8.0)) as f32))
        });
        Self { recip }
    }
}

/// Transforms and quantises an 8×8 block of level-shifted samples (−128..127).
/// The result is transposed: the coefficient of vertical frequency `u` and
/// horizontal frequency `v` is at `v * 8 + u` (the zig-zag table accounts for it).
#[inline]
pub fn forward(block: &mut [Row; 8], q: &Quantizer, out: &mut [i16; 64]) {
    dct_columns(block);
    transpose(block);
    dct_columns(block);
    for ((row, recip), out) in block.iter().zip(&q.recip).zip(out.chunks_exact_mut(8)) {
        row.quantize(*recip, out.try_into().unwrap());
    }
}

/// One 1-D AAN pass down the columns: all eight columns at once.
#[inline(always)]
fn dct_columns(d: &mut [Row; 8]) {
    let tmp0 = d[0].add(d[7]);
    let tmp7 = d[0].sub(d[7]);
    let tmp1 = d[1].add(d[6]);
    let tmp6 = d[1].sub(d[6]);
    let tmp2 = d[2].add(d[5]);
    let tmp5 = d[2].sub(d[5]);
    let tmp3 = d[3].add(d[4]);
    let tmp4 = d[3].sub(d[4]);

    // Even part.
    let tmp10 = tmp0.add(tmp3);
    let tmp13 = tmp0.sub(tmp3);
    let tmp11 = tmp1.add(tmp2);
    let tmp12 = tmp1.sub(tmp2);
    d[0] = tmp10.add(tmp11);
    d[4] = tmp10.sub(tmp11);
    let z1 = tmp12.add(tmp13).scale(std::f32::consts::FRAC_1_SQRT_2);
    d[2] = tmp13.add(z1);
    d[6] = tmp13.sub(z1);

    // Odd part.
    let tmp10 = tmp4.add(tmp5);
    let tmp11 = tmp5.add(tmp6);
    let tmp12 = tmp6.add(tmp7);
    let z5 = tmp10.sub(tmp12).scale(0.382_683_43);
    let z2 = tmp10.scale(0.541_196_1).add(z5);
    let z4 = tmp12.scale(1.306_563).add(z5);
    let z3 = tmp11.scale(std::f32::consts::FRAC_1_SQRT_2);
    let z11 = tmp7.add(z3);
    let z13 = tmp7.sub(z3);
    d[5] = z13.add(z2);
    d[3] = z13.sub(z2);
    d[1] = z11.add(z4);
    d[7] = z11.sub(z4);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook DCT-II, for checking the fast one.
    fn reference(block: &[[f32; 8]; 8]) -> [[f64; 8]; 8] {
        let c = |k: usize| if k == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
        let mut out = [[0.0; 8]; 8];
        for (u, row) in out.iter_mut().enumerate() {
            for (v, cell) in row.iter_mut().enumerate() {
                let mut s = 0.0;
                for (y, samples) in block.iter().enumerate() {
                    for (x, &p) in samples.iter().enumerate() {
                        s += f64::from(p)
                            * (((2 * x + 1) as f64 * v as f64 * std::f64::consts::PI) / 16.0).cos()
                            * (((2 * y + 1) as f64 * u as f64 * std::f64::consts::PI) / 16.0).cos();
                    }
                }
                *cell = 0.25 * c(u) * c(v) * s;
            }
        }
        out
    }

    #[test]
    fn matches_the_textbook_dct_with_unit_quantisers() {
        let samples: [[f32; 8]; 8] =
            std::array::from_fn(|y| std::array::from_fn(|x| ((x * 37 + y * 91 + x * y * 13) % 256) as f32 - 128.0));
        let expected = reference(&samples);
        let mut block = samples.map(Row::from_array);
        let mut out = [0i16; 64];
        forward(&mut block, &Quantizer::new(&[1; 64]), &mut out);
        for u in 0..8 {
            for v in 0..8 {
                let got = f64::from(out[v * 8 + u]);
                assert!((got - expected[u][v]).abs() <= 1.0, "coefficient ({u},{v}): {got} vs {}", expected[u][v]);
            }
        }
    }
}
