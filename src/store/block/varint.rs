//! The varint encoding of a v2 block's summary and columns: unsigned LEB128, minimal, at
//! most 10 bytes; zigzag for signed deltas; and a reader that refuses what the encoder would
//! not write and never allocates for a count larger than the bytes left.
//!
//! Owns: [`varint`], [`zigzag`] and [`Reader`]. Must not: know what the values mean.

/// `v` zigzag-coded: small magnitudes of either sign give small values.
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as a minimal LEB128 varint.
pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads values off the front of a byte slice.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("columns end early")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A minimal varint of at most 10 bytes (a non-minimal one is not what the encoder
    /// writes, so it is refused).
    pub(super) fn varint(&mut self) -> Result<u64, String> {
        // Most values of every column fit one byte.
        if let Some(&b) = self.bytes.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.take(1)?[0];
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err("varint not minimal".into());
                }
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// Nothing may follow what was read.
    pub(super) fn end(&self, what: &str) -> Result<(), String> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(format!("{n} bytes after the {what}")),
        }
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub(super) fn bytes(&mut self, max: usize, what: &str) -> Result<Vec<u8>, String> {
        let len = self.varint()? as usize;
        if len > max {
            return Err(format!("{what} of {len} bytes"));
        }
        Ok(self.take(len)?.to_vec())
    }

    pub(super) fn many<T>(
        &mut self,
        n: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        // Each item takes a byte at least: a count larger than what is left is refused before
        // anything is allocated for it.
        if n > self.bytes.len() - self.pos {
            return Err("columns end early".into());
        }
        (0..n).map(|_| f(self)).collect()
    }
}
