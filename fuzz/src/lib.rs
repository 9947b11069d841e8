//! Shared pieces of the fuzz targets: a heap-measuring allocator and the `Connection` driver.
//!
//! The targets live in `fuzz_targets/`; `scripts/fuzz.sh` builds and runs them.

pub mod alloc;
pub mod conn;
pub mod http;

/// Reads bytes off the front of the fuzz input; past the end it yields zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}
