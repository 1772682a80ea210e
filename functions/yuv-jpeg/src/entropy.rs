//! Huffman coding of quantised blocks into the entropy-coded segment.

use std::mem::MaybeUninit;

use crate::tables::{HuffmanSpec, ZIGZAG};

/// Code and length of every symbol of one Huffman table, packed as
/// `code << 8 | length` so coding a symbol is one load.
pub struct HuffmanCodes {
    packed: [u32; 256],
}

impl HuffmanCodes {
    /// Canonical codes from a DHT specification (T.81 Annex C).
    pub fn new(spec: &HuffmanSpec) -> Self {
        let mut packed = [0; 256];
        let mut code = 0u32;
        let mut symbols = spec.symbols.iter();
        for (i, &count) in spec.counts.iter().enumerate() {
            for symbol in symbols.by_ref().take(usize::from(count)) {
                packed[usize::from(*symbol)] = (code << 8) | (i as u32 + 1);
                code += 1;
            }
            code <<= 1;
        }
        Self { packed }
    }

    /// The code of `symbol` followed by `size` extra bits, as (bits, length).
    #[inline(always)]
    fn with_extra(&self, symbol: u32, extra: u32, size: u32) -> (u32, u32) {
        let entry = self.packed[(symbol & 0xFF) as usize];
        (((entry >> 8) << size) | extra, (entry & 0xFF) + size)
    }
}

/// Zig-zag positions in the transposed layout the DCT leaves.
const ZIGZAG_TRANSPOSED: [u8; 64] = {
    let mut t = [0; 64];
    let mut k = 0;
    while k < 64 {
        t[k] = ((ZIGZAG[k] % 8) * 8 + ZIGZAG[k] / 8) as u8;
        k += 1;
    }
    t
};

/// The most one block can add: DC ≤ 22 bits, 63 AC codes ≤ 26 bits, 3 ZRLs
/// ≤ 11 bits (1697 bits, 213 bytes), doubled if every byte were 0xFF, plus
/// the ≤ 31 bits already pending.
const MAX_BLOCK_BYTES: usize = 2 * (213 + 4);

/// The entropy-coded segment: bits MSB first, a zero stuffed after every
/// 0xFF byte.
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    /// Bits waiting in the low end of `acc`; always < 32 between blocks.
    pending: u32,
}

impl BitWriter {
    pub fn new(out: Vec<u8>) -> Self {
        Self { out, acc: 0, pending: 0 }
    }

    /// Huffman-codes one block (DCT output order) against the previous DC.
    #[inline]
    pub fn block(&mut self, coefs: &[i16; 64], prev_dc: &mut i16, dc: &HuffmanCodes, ac: &HuffmanCodes) {
        self.with_sink(|sink| sink.block(coefs, prev_dc, dc, ac));
    }

    /// Runs `write` on a sink over reserved spare capacity. The sink keeps
    /// the bit accumulator and write position in locals: through `&mut self`
    /// they went to memory on every code, since byte stores may alias them.
    #[inline(always)]
    fn with_sink(&mut self, write: impl FnOnce(&mut Sink<'_>)) {
        self.out.reserve(MAX_BLOCK_BYTES);
        let start = self.out.len();
        let mut sink = Sink { dst: self.out.spare_capacity_mut(), written: 0, acc: self.acc, pending: self.pending };
        write(&mut sink);
        let (written, acc, pending) = (sink.written, sink.acc, sink.pending);
        // SAFETY: the sink initialised the first `written` bytes of the spare capacity.
        unsafe { self.out.set_len(start + written) };
        (self.acc, self.pending) = (acc, pending);
    }

    /// Pads the last byte with 1-bits and returns the output.
    pub fn finish(mut self) -> Vec<u8> {
        let pad = (8 - self.pending % 8) % 8;
        self.acc = (self.acc << pad) | ((1 << pad) - 1);
        self.pending += pad;
        while self.pending > 0 {
            self.pending -= 8;
            let byte = (self.acc >> self.pending) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
        self.out
    }
}

/// Where one block's bytes go: spare capacity of the output, at least
/// MAX_BLOCK_BYTES long (writes past it would panic, not corrupt).
struct Sink<'a> {
    dst: &'a mut [MaybeUninit<u8>],
    written: usize,
    acc: u64,
    pending: u32,
}

impl Sink<'_> {
    /// Appends the low `len` (≤ 32) bits of `bits`.
    #[inline(always)]
    fn put(&mut self, bits: u32, len: u32) {
        self.acc = (self.acc << len) | u64::from(bits);
        self.pending += len;
        if self.pending >= 32 {
            self.pending -= 32;
            let word = (self.acc >> self.pending) as u32;
            let inverted = !word;
            // A zero byte in !word is a 0xFF byte in word (the classic haszero test).
            if inverted.wrapping_sub(0x0101_0101) & !inverted & 0x8080_8080 == 0 {
                let dst = &mut self.dst[self.written..self.written + 4];
                for (slot, byte) in dst.iter_mut().zip(word.to_be_bytes()) {
                    *slot = MaybeUninit::new(byte);
                }
                self.written += 4;
            } else {
                self.written = stuffed(self.dst, self.written, word);
            }
        }
    }

    #[inline(always)]
    fn block(&mut self, coefs: &[i16; 64], prev_dc: &mut i16, dc: &HuffmanCodes, ac: &HuffmanCodes) {
        // `& 63` proves the index in range, so the gather has no bounds checks.
        let zz: [i16; 64] = std::array::from_fn(|k| coefs[usize::from(ZIGZAG_TRANSPOSED[k]) & 63]);
        let nonzero = crate::lanes::nonzero_mask(&zz);

        let diff = zz[0].wrapping_sub(*prev_dc);
        *prev_dc = zz[0];
        let (size, extra) = magnitude(diff);
        let (bits, len) = dc.with_extra(size, extra, size);
        self.put(bits, len);

        // Walk the non-zero AC coefficients only; runs of zeros come from the gaps.
        let mut rest = nonzero & !1;
        let mut last = 0u32;
        while rest != 0 {
            let k = rest.trailing_zeros();
            rest &= rest - 1;
            let mut run = k - last - 1;
            while run >= 16 {
                let (bits, len) = ac.with_extra(0xF0, 0, 0);
                self.put(bits, len);
                run -= 16;
            }
            let (size, extra) = magnitude(zz[(k & 63) as usize]);
            let (bits, len) = ac.with_extra((run << 4) | size, extra, size);
            self.put(bits, len);
            last = k;
        }
        if last != 63 {
            let (bits, len) = ac.with_extra(0x00, 0, 0);
            self.put(bits, len);
        }
    }
}

/// Writes `word` with a zero after each 0xFF byte; returns the new length.
/// Out of line and by value, so the hot path keeps its state in registers.
#[cold]
#[inline(never)]
fn stuffed(dst: &mut [MaybeUninit<u8>], mut written: usize, word: u32) -> usize {
    for byte in word.to_be_bytes() {
        dst[written] = MaybeUninit::new(byte);
        written += 1;
        if byte == 0xFF {
            dst[written] = MaybeUninit::new(0);
            written += 1;
        }
    }
    written
}

/// JPEG's (category, extra bits) of a coefficient: negatives as v − 1 in
/// `category` bits.
#[inline(always)]
fn magnitude(v: i16) -> (u32, u32) {
    let v = i32::from(v);
    let sign = v >> 31;
    let size = 32 - ((v ^ sign) - sign).leading_zeros();
    (size, ((v + sign) as u32) & ((1u32 << size) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_categories_follow_t81() {
        assert_eq!(magnitude(0), (0, 0));
        assert_eq!(magnitude(1), (1, 1));
        assert_eq!(magnitude(-1), (1, 0));
        assert_eq!(magnitude(5), (3, 5));
        assert_eq!(magnitude(-5), (3, 2));
        assert_eq!(magnitude(1023), (10, 1023));
        assert_eq!(magnitude(-2047), (11, 0));
    }

    #[test]
    fn canonical_codes_of_the_luma_dc_table() {
        let codes = HuffmanCodes::new(&crate::tables::LUMA_DC);
        // T.81 Table K.3: category 0 is 00, 1 is 010, 5 is 110, 11 is 111111110.
        assert_eq!(codes.with_extra(0, 0, 0), (0b00, 2));
        assert_eq!(codes.with_extra(1, 0, 0), (0b010, 3));
        assert_eq!(codes.with_extra(5, 0b10110, 5), (0b110_10110, 8));
        assert_eq!(codes.with_extra(11, 0, 0), (0b1_1111_1110, 9));
    }

    #[test]
    fn ff_bytes_are_stuffed_and_the_tail_padded_with_ones() {
        let mut w = BitWriter::new(Vec::new());
        w.with_sink(|s| {
            s.put(0xFFFF_FFFF, 32);
            s.put(0b101, 3);
        });
        assert_eq!(w.finish(), [0xFF, 0, 0xFF, 0, 0xFF, 0, 0xFF, 0, 0b1011_1111]);
    }
}
