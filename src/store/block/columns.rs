//! The derived columns of a v2 block: per record, what aggregations read instead of the
//! records (time, stream, line length, detected level).
//!
//! Layout (before compression into one frame; VERIFY.md gives it byte for byte), every
//! integer an unsigned LEB128 varint:
//! `count`, then `count` zigzag timestamp deltas (the first from the block's `min_ts_ns`),
//! then `count` stream ids, then `count` line lengths, then the level dictionary (`n`, then
//! `n` × (`len`, bytes), in order of first appearance) and `count` level indexes (0: the
//! record has no `detected_level` metadata, `i` ≤ `n`: the dictionary's `i`-th,
//! [`LEVEL_UNLISTED`]: one the dictionary could not hold), then the other metadata names
//! the block's records hold (`m`, then `m` × (`len`, bytes), in order of first appearance; or
//! `m` = [`NAMES_UNLISTED`] and nothing after it, when there are too many to list).
//!
//! The names let a query know, without reading records, that no record of the block carries
//! a label its answer would show (so time, stream, length and level are all it needs).
//!
//! Owns: [`ColumnsBuilder`] and [`Columns::decode`]. Must not: compress or do I/O.

/// The metadata name whose value the level column holds.
pub const LEVEL_NAME: &[u8] = b"detected_level";

/// Distinct levels one block's dictionary holds at most; more would mean the column is not
/// a level (values are set by clients): records past it store index 0 and queries read them
/// from the records. Key: none (part of the format).
pub const MAX_LEVELS: usize = 32;

/// Bytes of one level value at most, for the same reason.
pub const MAX_LEVEL_BYTES: usize = 32;

/// The level index of a record whose level the dictionary could not hold (past
/// [`MAX_LEVELS`], or longer than [`MAX_LEVEL_BYTES`]): read it from the record.
pub const LEVEL_UNLISTED: u64 = MAX_LEVELS as u64 + 1;

/// Distinct metadata names (besides `detected_level`) one block lists at most: past it the
/// block says only that it holds more ([`NAMES_UNLISTED`]), and queries that would show one
/// read the records. Key: none (part of the format).
pub const MAX_NAMES: usize = 32;

/// Bytes of one listed metadata name at most; a longer one makes the list [`NAMES_UNLISTED`].
pub const MAX_NAME_BYTES: usize = 64;

/// The name count that says the block holds more names than it lists (and lists none).
pub const NAMES_UNLISTED: u64 = MAX_NAMES as u64 + 1;

/// Columns being gathered for one block.
#[derive(Debug, Clone)]
pub struct ColumnsBuilder {
    ts: Vec<i64>,
    stream: Vec<i64>,
    line_len: Vec<u64>,
    level: Vec<u64>,
    levels: Vec<Vec<u8>>,
    /// `None` once there are more than can be listed.
    names: Option<Vec<Vec<u8>>>,
}

impl Default for ColumnsBuilder {
    fn default() -> Self {
        ColumnsBuilder {
            ts: Vec::new(),
            stream: Vec::new(),
            line_len: Vec::new(),
            level: Vec::new(),
            levels: Vec::new(),
            names: Some(Vec::new()),
        }
    }
}

impl ColumnsBuilder {
    pub fn push(&mut self, ts_ns: i64, stream_id: i64, line_len: usize, level: Option<&[u8]>) {
        self.ts.push(ts_ns);
        self.stream.push(stream_id);
        self.line_len.push(line_len as u64);
        let index = level.map_or(0, |l| self.level_index(l));
        self.level.push(index);
    }

    fn level_index(&mut self, level: &[u8]) -> u64 {
        if let Some(i) = self.levels.iter().position(|l| l == level) {
            return i as u64 + 1;
        }
        if self.levels.len() >= MAX_LEVELS || level.len() > MAX_LEVEL_BYTES {
            return LEVEL_UNLISTED;
        }
        self.levels.push(level.to_vec());
        self.levels.len() as u64
    }

    /// Notes a metadata name (other than [`LEVEL_NAME`]) of a record pushed.
    pub fn note_name(&mut self, name: &[u8]) {
        let Some(names) = self.names.as_mut() else {
            return;
        };
        if names.iter().any(|n| n == name) {
            return;
        }
        if names.len() >= MAX_NAMES || name.len() > MAX_NAME_BYTES {
            self.names = None;
        } else {
            names.push(name.to_vec());
        }
    }

    /// The uncompressed column bytes, timestamps relative to `min_ts_ns`.
    pub fn encode(&self, min_ts_ns: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ts.len() * 6 + 16);
        varint(&mut out, self.ts.len() as u64);
        let mut prev = min_ts_ns;
        for &ts in &self.ts {
            varint(&mut out, zigzag(ts.wrapping_sub(prev)));
            prev = ts;
        }
        for &s in &self.stream {
            varint(&mut out, s as u64);
        }
        for &n in &self.line_len {
            varint(&mut out, n);
        }
        varint(&mut out, self.levels.len() as u64);
        for l in &self.levels {
            varint(&mut out, l.len() as u64);
            out.extend_from_slice(l);
        }
        for &i in &self.level {
            varint(&mut out, i);
        }
        match &self.names {
            None => varint(&mut out, NAMES_UNLISTED),
            Some(names) => {
                varint(&mut out, names.len() as u64);
                for n in names {
                    varint(&mut out, n.len() as u64);
                    out.extend_from_slice(n);
                }
            }
        }
        out
    }
}

/// A block's columns, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub ts_ns: Vec<i64>,
    pub stream_id: Vec<i64>,
    pub line_len: Vec<u64>,
    /// Index into `levels` plus one, 0 for none, [`LEVEL_UNLISTED`] for one not listed.
    pub level: Vec<u64>,
    pub levels: Vec<Vec<u8>>,
    /// The other metadata names the records hold; `None` when there are too many to list.
    pub names: Option<Vec<Vec<u8>>>,
}

impl Columns {
    /// The `i`-th record's level: `Some(None)` when it has none, `None` when the dictionary
    /// does not hold it.
    pub fn level_of(&self, i: usize) -> Option<Option<&[u8]>> {
        match self.level[i] {
            0 => Some(None),
            LEVEL_UNLISTED => None,
            k => Some(Some(&self.levels[k as usize - 1])),
        }
    }

    /// Whether every record's level is in the dictionary.
    pub fn levels_listed(&self) -> bool {
        !self.level.contains(&LEVEL_UNLISTED)
    }
}

impl Columns {
    /// Decodes `bytes`, which must hold exactly `count` records' columns.
    pub fn decode(bytes: &[u8], count: usize, min_ts_ns: i64) -> Result<Columns, String> {
        let mut r = Reader { bytes, pos: 0 };
        if r.varint()? != count as u64 {
            return Err("record count differs from the block's".into());
        }
        let mut prev = min_ts_ns;
        let ts_ns = r.many(count, |r| {
            prev = prev.wrapping_add(unzigzag(r.varint()?));
            Ok(prev)
        })?;
        let stream_id = r.many(count, |r| Ok(r.varint()? as i64))?;
        let line_len = r.many(count, Reader::varint)?;
        let n = r.varint()? as usize;
        if n > MAX_LEVELS {
            return Err(format!("{n} levels, more than {MAX_LEVELS}"));
        }
        let levels = r.many(n, |r| {
            let len = r.varint()? as usize;
            if len > MAX_LEVEL_BYTES {
                return Err(format!("a level of {len} bytes"));
            }
            Ok(r.take(len)?.to_vec())
        })?;
        let level = r.many(count, |r| match r.varint()? {
            i if i as usize <= n || i == LEVEL_UNLISTED => Ok(i),
            i => Err(format!("level index {i} past the dictionary")),
        })?;
        let names = match r.varint()? {
            NAMES_UNLISTED => None,
            m if m as usize <= MAX_NAMES => Some(r.many(m as usize, |r| {
                let len = r.varint()? as usize;
                if len > MAX_NAME_BYTES {
                    return Err(format!("a metadata name of {len} bytes"));
                }
                Ok(r.take(len)?.to_vec())
            })?),
            m => Err(format!("{m} metadata names, more than {MAX_NAMES}"))?,
        };
        if r.pos != bytes.len() {
            return Err(format!("{} bytes after the columns", bytes.len() - r.pos));
        }
        Ok(Columns {
            ts_ns,
            stream_id,
            line_len,
            level,
            levels,
            names,
        })
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("columns end early")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A minimal varint of at most 10 bytes (a non-minimal one is not what the encoder
    /// writes, so it is refused).
    fn varint(&mut self) -> Result<u64, String> {
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

    fn many<T>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_decode_to_what_was_pushed() {
        let mut b = ColumnsBuilder::default();
        b.push(1_000, 3, 120, Some(b"info"));
        b.push(900, 1, 0, None);
        b.push(i64::MAX, 300, 70_000, Some(b"error"));
        b.push(i64::MIN, 3, 5, Some(b"info"));
        let bytes = b.encode(i64::MIN);
        let c = Columns::decode(&bytes, 4, i64::MIN).unwrap();
        assert_eq!(c.ts_ns, [1_000, 900, i64::MAX, i64::MIN]);
        assert_eq!(c.stream_id, [3, 1, 300, 3]);
        assert_eq!(c.line_len, [120, 0, 70_000, 5]);
        assert_eq!(c.levels, [b"info".to_vec(), b"error".to_vec()]);
        assert_eq!(c.level, [1, 0, 2, 1]);
        assert_eq!(c.names, Some(vec![]));
        assert!(Columns::decode(&bytes, 3, i64::MIN).is_err());
        for cut in 0..bytes.len() {
            assert!(Columns::decode(&bytes[..cut], 4, i64::MIN).is_err());
        }
    }

    #[test]
    fn too_many_or_too_long_levels_are_left_to_the_records() {
        let mut b = ColumnsBuilder::default();
        for i in 0..MAX_LEVELS + 2 {
            b.push(0, 1, 0, Some(format!("l{i}").as_bytes()));
        }
        b.push(0, 1, 0, Some(&[b'x'; MAX_LEVEL_BYTES + 1]));
        b.push(0, 1, 0, None);
        let c = Columns::decode(&b.encode(0), MAX_LEVELS + 4, 0).unwrap();
        assert_eq!(c.levels.len(), MAX_LEVELS);
        assert_eq!(
            &c.level[MAX_LEVELS..],
            [LEVEL_UNLISTED; 3]
                .into_iter()
                .chain([0])
                .collect::<Vec<_>>()
        );
        assert_eq!(c.level_of(MAX_LEVELS), None);
        assert_eq!(c.level_of(MAX_LEVELS + 3), Some(None));
        assert_eq!(c.level_of(0), Some(Some(&b"l0"[..])));
        assert!(!c.levels_listed());
    }

    #[test]
    fn metadata_names_are_listed_until_there_are_too_many() {
        let mut b = ColumnsBuilder::default();
        b.push(0, 1, 0, None);
        b.note_name(b"trace_id");
        b.note_name(b"level");
        b.note_name(b"trace_id");
        let c = Columns::decode(&b.encode(0), 1, 0).unwrap();
        assert_eq!(c.names, Some(vec![b"trace_id".to_vec(), b"level".to_vec()]));
        for i in 0..MAX_NAMES {
            b.note_name(format!("n{i}").as_bytes());
        }
        let c = Columns::decode(&b.encode(0), 1, 0).unwrap();
        assert_eq!(c.names, None);
        let mut long = ColumnsBuilder::default();
        long.push(0, 1, 0, None);
        long.note_name(&[b'x'; MAX_NAME_BYTES + 1]);
        assert_eq!(Columns::decode(&long.encode(0), 1, 0).unwrap().names, None);
    }

    #[test]
    fn non_minimal_varints_are_refused() {
        assert!(Columns::decode(&[0x81, 0x00], 1, 0).is_err());
    }
}
