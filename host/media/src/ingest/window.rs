//! A growable read-ahead window over a byte stream, so parsers can look
//! ahead (to resynchronise) without loading whole files.

use std::io::{self, Read};

/// Bytes read from `src` and not yet consumed.
pub struct Window<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    consumed: u64,
    eof: bool,
}

impl<R: Read> Window<R> {
    /// Wraps a reader.
    pub fn new(src: R) -> Self {
        Self { src, buf: Vec::with_capacity(1 << 16), start: 0, consumed: 0, eof: false }
    }

    /// Makes at least `n` unconsumed bytes available unless the input ends
    /// first; returns how many are available.
    pub fn fill(&mut self, n: usize) -> io::Result<usize> {
        while self.buf.len() - self.start < n && !self.eof {
            if self.start > 0 && self.start >= self.buf.len() / 2 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let want = (n - (self.buf.len() - self.start)).max(1 << 16);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let got = loop {
                match self.src.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            };
            self.buf.truncate(old + got);
            self.eof = got == 0;
        }
        Ok(self.available().len())
    }

    /// The unconsumed bytes.
    pub fn available(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Consumes `n` bytes.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len() - self.start);
        self.start += n;
        self.consumed += n as u64;
    }

    /// Input offset of the first unconsumed byte.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    /// Whether the input has ended (what is available is all there is).
    pub fn at_eof(&self) -> bool {
        self.eof
    }
}
