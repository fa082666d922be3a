//! Decoding `ENTRY_V1`: the strict reader of the record format, for verify and readers.
//!
//! Owns: [`decode`], which checks structure, sortedness, uniqueness and that nothing trails a
//! record, and [`View`], which borrows from the bytes so a verifier need not allocate.
//!
//! Must not: do I/O or accept anything the encoder would not produce.

use super::{ENTRY_VERSION, FormatError, MAX_BSTR, Pairs, Record};

/// A decoded record that borrows from the encoded bytes: what `verify` checks per row
/// without allocating.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub seq: u64,
    pub recv_ns: i64,
    pub ts_ns: i64,
    pub source: &'a [u8],
    pub tenant: &'a [u8],
    /// The whole labels section, as [`Encoded::labels_bytes`] gives it.
    pub labels: &'a [u8],
    pub metadata: &'a [u8],
    pub line: &'a [u8],
}

impl View<'_> {
    /// Converts to an owned record (for readers), checking UTF-8 where the format has strings.
    pub fn to_record(&self) -> Result<Record, FormatError> {
        Ok(Record {
            seq: self.seq,
            recv_ns: self.recv_ns,
            ts_ns: self.ts_ns,
            source: utf8(self.source, "source")?,
            tenant: utf8(self.tenant, "tenant")?,
            labels: Pairs(decode_pairs(self.labels, "labels")?),
            metadata: Pairs(decode_pairs(self.metadata, "metadata")?),
            line: self.line.to_vec(),
        })
    }
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, FormatError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::Utf8(what))
}

/// Decodes an `ENTRY_V1` record. Checks structure, that `source`, `tenant` and every pair
/// name and value are UTF-8, sortedness and uniqueness of names, and that nothing trails the
/// record: whatever it accepts, the encoder could have produced.
pub fn decode(bytes: &[u8]) -> Result<View<'_>, FormatError> {
    let mut cur = Cursor { bytes, pos: 0 };
    let version = cur.take(1, "version")?[0];
    if version != ENTRY_VERSION {
        return Err(FormatError::Version(version));
    }
    let seq = cur.u64("seq")?;
    let recv_ns = cur.u64("recv_ns")? as i64;
    let ts_ns = cur.u64("ts_ns")? as i64;
    let source = cur.text("source")?;
    let tenant = cur.text("tenant")?;
    let labels = cur.pairs("labels")?;
    let metadata = cur.pairs("metadata")?;
    let line = cur.bstr("line")?;
    if cur.pos != bytes.len() {
        return Err(FormatError::Trailing(bytes.len() - cur.pos));
    }
    Ok(View {
        seq,
        recv_ns,
        ts_ns,
        source,
        tenant,
        labels,
        metadata,
        line,
    })
}

/// Decodes a pairs section (as found in [`View::labels`] or [`View::metadata`]).
pub fn decode_pairs(
    section: &[u8],
    what: &'static str,
) -> Result<Vec<(String, String)>, FormatError> {
    let mut cur = Cursor {
        bytes: section,
        pos: 0,
    };
    let n = cur.u32(what)? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let name = utf8(cur.bstr(what)?, what)?;
        let value = utf8(cur.bstr(what)?, what)?;
        out.push((name, value));
    }
    Ok(out)
}

/// The (name, value) byte pairs of a section [`decode`] already checked, without copying;
/// a section that breaks off ends the walk early.
pub fn raw_pairs(section: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut cur = Cursor {
        bytes: section,
        pos: 0,
    };
    let n = cur.u32("pairs").unwrap_or(0);
    (0..n).map_while(move |_| Some((cur.bstr("pairs").ok()?, cur.bstr("pairs").ok()?)))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(FormatError::Truncated(what))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }

    fn bstr(&mut self, what: &'static str) -> Result<&'a [u8], FormatError> {
        let len = self.u32(what)? as usize;
        if len > MAX_BSTR {
            return Err(FormatError::TooLong {
                field: what,
                len,
                max: MAX_BSTR,
            });
        }
        self.take(len, what)
    }

    /// A `bstr` that must be UTF-8 (checked in place, without copying).
    fn text(&mut self, what: &'static str) -> Result<&'a [u8], FormatError> {
        let b = self.bstr(what)?;
        std::str::from_utf8(b).map_err(|_| FormatError::Utf8(what))?;
        Ok(b)
    }

    /// Reads a pairs section, checking UTF-8 and strictly increasing names; returns the
    /// section's bytes.
    fn pairs(&mut self, what: &'static str) -> Result<&'a [u8], FormatError> {
        let start = self.pos;
        let n = self.u32(what)?;
        let mut prev: Option<&[u8]> = None;
        for _ in 0..n {
            let name = self.text(what)?;
            self.text(what)?;
            if let Some(p) = prev {
                if p == name {
                    return Err(FormatError::DuplicateName(
                        String::from_utf8_lossy(name).into(),
                    ));
                }
                if p > name {
                    return Err(FormatError::Unsorted(what));
                }
            }
            prev = Some(name);
        }
        Ok(&self.bytes[start..self.pos])
    }
}
