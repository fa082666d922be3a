//! The derived columns of a v2 block: what aggregations read instead of the records. A
//! block's [`Summary`] (stored raw, in `blocks.summary`) sums its records by stream and
//! level; its [`Rows`] (stored as one compressed frame, in `blocks.columns`) give each
//! record's time, stream, line length and level.
//!
//! Layouts (VERIFY.md gives them byte for byte), every integer an unsigned LEB128 varint.
//! Summary: `count`, the level dictionary (`n`, then `n` × (`len`, bytes), in order of first
//! appearance), the metadata names other than `detected_level` the block's records hold (`m`,
//! then `m` × (`len`, bytes), in order of first appearance; or `m` = [`NAMES_UNLISTED`] and
//! nothing after it, when there are too many to list), then the groups (`k`, then `k` ×
//! (stream id, level index, records, line bytes), one per distinct stream and level index in
//! order of first appearance). Rows: `count` zigzag timestamp deltas (the first from the
//! block's `min_ts_ns`), `count` stream ids, `count` line lengths and `count` level indexes
//! (0: the record has no `detected_level` metadata, `i` ≤ `n`: the dictionary's `i`-th,
//! [`LEVEL_UNLISTED`]: one the dictionary could not hold).
//!
//! The names let a query know, without reading records, that no record of the block carries
//! a label its answer would show; the groups answer a count or byte count over a block that
//! lies inside one bucket of the query without decompressing anything. The summary is small
//! (a few hundred bytes) and sits before the compressed columns in the row, so reading it
//! costs the row's first page.
//!
//! Owns: [`ColumnsBuilder`], [`Summary::decode`] and [`Summary::rows`]. Must not: compress
//! or do I/O (nor know the varint encoding, which is [`super::varint`]'s).

use super::varint::{Reader, unzigzag, varint, zigzag};

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

    /// The summary's bytes and the rows' bytes (uncompressed), timestamps relative to
    /// `min_ts_ns`.
    pub fn encode(&self, min_ts_ns: i64) -> (Vec<u8>, Vec<u8>) {
        (self.encode_summary(), self.encode_rows(min_ts_ns))
    }

    fn encode_summary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        varint(&mut out, self.ts.len() as u64);
        varint(&mut out, self.levels.len() as u64);
        for l in &self.levels {
            varint(&mut out, l.len() as u64);
            out.extend_from_slice(l);
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
        let groups = self.groups();
        varint(&mut out, groups.len() as u64);
        for g in &groups {
            for v in [g.stream_id as u64, g.level, g.count, g.line_bytes] {
                varint(&mut out, v);
            }
        }
        out
    }

    fn encode_rows(&self, min_ts_ns: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ts.len() * 6);
        let mut prev = min_ts_ns;
        for &ts in &self.ts {
            varint(&mut out, zigzag(ts.wrapping_sub(prev)));
            prev = ts;
        }
        let rows = self.stream.iter().map(|&s| s as u64);
        for v in rows
            .chain(self.line_len.iter().copied())
            .chain(self.level.iter().copied())
        {
            varint(&mut out, v);
        }
        out
    }

    /// The records summed by stream and level index, in order of first appearance.
    fn groups(&self) -> Vec<GroupSum> {
        let mut at: foldhash::HashMap<(i64, u64), usize> = foldhash::HashMap::default();
        let mut groups: Vec<GroupSum> = Vec::new();
        for ((&stream_id, &level), &len) in self.stream.iter().zip(&self.level).zip(&self.line_len)
        {
            let i = *at.entry((stream_id, level)).or_insert_with(|| {
                groups.push(GroupSum {
                    stream_id,
                    level,
                    count: 0,
                    line_bytes: 0,
                });
                groups.len() - 1
            });
            groups[i].count += 1;
            groups[i].line_bytes += len;
        }
        groups
    }
}

/// The records of one stream with one level index in a block, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSum {
    pub stream_id: i64,
    /// As in [`Rows::level`].
    pub level: u64,
    pub count: u64,
    /// Bytes of the group's lines together.
    pub line_bytes: u64,
}

/// What a block's columns say before its rows: the level dictionary, the metadata names and
/// the records summed by stream and level. A query whose every record of the block falls in
/// one bucket reads only this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub levels: Vec<Vec<u8>>,
    /// The other metadata names the records hold; `None` when there are too many to list.
    pub names: Option<Vec<Vec<u8>>>,
    pub groups: Vec<GroupSum>,
}

/// A block's columns per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub ts_ns: Vec<i64>,
    pub stream_id: Vec<i64>,
    pub line_len: Vec<u64>,
    /// Index into the levels plus one, 0 for none, [`LEVEL_UNLISTED`] for one not listed.
    pub level: Vec<u64>,
}

/// A block's columns, decoded whole.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub summary: Summary,
    pub rows: Rows,
}

impl Summary {
    /// Decodes `bytes`, the summary of a block of `count` records.
    pub fn decode(bytes: &[u8], count: usize) -> Result<Summary, String> {
        let mut r = Reader::new(bytes);
        if r.varint()? != count as u64 {
            return Err("record count differs from the block's".into());
        }
        let n = r.varint()? as usize;
        if n > MAX_LEVELS {
            return Err(format!("{n} levels, more than {MAX_LEVELS}"));
        }
        let levels = r.many(n, |r| r.bytes(MAX_LEVEL_BYTES, "a level"))?;
        let names = match r.varint()? {
            NAMES_UNLISTED => None,
            m if m as usize <= MAX_NAMES => {
                Some(r.many(m as usize, |r| r.bytes(MAX_NAME_BYTES, "a metadata name"))?)
            }
            m => Err(format!("{m} metadata names, more than {MAX_NAMES}"))?,
        };
        let k = r.varint()? as usize;
        if k > count {
            return Err(format!("{k} groups for {count} records"));
        }
        let groups = r.many(k, |r| {
            let (stream_id, level) = (r.varint()? as i64, read_level(r, n)?);
            let (count, line_bytes) = (r.varint()?, r.varint()?);
            Ok(GroupSum {
                stream_id,
                level,
                count,
                line_bytes,
            })
        })?;
        if groups.iter().map(|g| g.count).sum::<u64>() != count as u64 {
            return Err("the groups' counts do not add up to the block's".into());
        }
        r.end("summary")?;
        Ok(Summary {
            levels,
            names,
            groups,
        })
    }

    /// Whether any group of the summary `bytes` (of a block of `count` records) is of a
    /// stream `wanted` accepts: what a plan needs of a block, read without allocating.
    pub fn any_stream(
        bytes: &[u8],
        count: usize,
        wanted: impl Fn(i64) -> bool,
    ) -> Result<bool, String> {
        let mut r = Reader::new(bytes);
        if r.varint()? != count as u64 {
            return Err("record count differs from the block's".into());
        }
        let skip = |r: &mut Reader<'_>, n: u64| -> Result<(), String> {
            for _ in 0..n {
                let len = r.varint()? as usize;
                r.take(len)?;
            }
            Ok(())
        };
        let n = r.varint()?;
        skip(&mut r, n.min(MAX_LEVELS as u64 + 1))?;
        match r.varint()? {
            NAMES_UNLISTED => {}
            m => skip(&mut r, m.min(MAX_NAMES as u64 + 1))?,
        }
        for _ in 0..r.varint()?.min(count as u64) {
            let stream_id = r.varint()? as i64;
            for _ in 0..3 {
                r.varint()?;
            }
            if wanted(stream_id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The level of index `k`: `Some(None)` for none, `None` when the dictionary does not
    /// hold it.
    #[cfg(test)]
    pub fn level(&self, k: u64) -> Option<Option<&[u8]>> {
        match k {
            0 => Some(None),
            LEVEL_UNLISTED => None,
            k => self.levels.get(k as usize - 1).map(|l| Some(&l[..])),
        }
    }

    /// Whether every record's level is in the dictionary.
    pub fn levels_listed(&self) -> bool {
        !self.groups.iter().any(|g| g.level == LEVEL_UNLISTED)
    }

    /// Decodes `bytes`, the rows of the block this summary was decoded from.
    pub fn rows(&self, bytes: &[u8], count: usize, min_ts_ns: i64) -> Result<Rows, String> {
        let mut r = Reader::new(bytes);
        let mut prev = min_ts_ns;
        let ts_ns = r.many(count, |r| {
            prev = prev.wrapping_add(unzigzag(r.varint()?));
            Ok(prev)
        })?;
        let stream_id = r.many(count, |r| Ok(r.varint()? as i64))?;
        let line_len = r.many(count, Reader::varint)?;
        let n = self.levels.len();
        let level = r.many(count, |r| read_level(r, n))?;
        r.end("rows")?;
        Ok(Rows {
            ts_ns,
            stream_id,
            line_len,
            level,
        })
    }
}

#[cfg(test)]
impl Columns {
    /// Decodes a block's summary and rows, which must hold exactly `count` records.
    pub fn decode(
        (summary, rows): (&[u8], &[u8]),
        count: usize,
        min_ts_ns: i64,
    ) -> Result<Columns, String> {
        let summary = Summary::decode(summary, count)?;
        let rows = summary.rows(rows, count, min_ts_ns)?;
        Ok(Columns { summary, rows })
    }

    /// The `i`-th record's level: `Some(None)` when it has none, `None` when the dictionary
    /// does not hold it.
    pub fn level_of(&self, i: usize) -> Option<Option<&[u8]>> {
        self.summary.level(self.rows.level[i])
    }
}

/// A level index given a dictionary of `n` levels.
fn read_level(r: &mut Reader<'_>, n: usize) -> Result<u64, String> {
    match r.varint()? {
        i if i as usize <= n || i == LEVEL_UNLISTED => Ok(i),
        i => Err(format!("level index {i} past the dictionary")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: &ColumnsBuilder, count: usize, min_ts_ns: i64) -> Result<Columns, String> {
        let (summary, rows) = b.encode(min_ts_ns);
        Columns::decode((&summary, &rows), count, min_ts_ns)
    }

    #[test]
    fn columns_decode_to_what_was_pushed() {
        let mut b = ColumnsBuilder::default();
        b.push(1_000, 3, 120, Some(b"info"));
        b.push(900, 1, 0, None);
        b.push(i64::MAX, 300, 70_000, Some(b"error"));
        b.push(i64::MIN, 3, 5, Some(b"info"));
        let (summary, rows) = b.encode(i64::MIN);
        let c = Columns::decode((&summary, &rows), 4, i64::MIN).unwrap();
        assert_eq!(c.rows.ts_ns, [1_000, 900, i64::MAX, i64::MIN]);
        assert_eq!(c.rows.stream_id, [3, 1, 300, 3]);
        assert_eq!(c.rows.line_len, [120, 0, 70_000, 5]);
        assert_eq!(c.summary.levels, [b"info".to_vec(), b"error".to_vec()]);
        assert_eq!(c.rows.level, [1, 0, 2, 1]);
        assert_eq!(c.summary.names, Some(vec![]));
        let group = |stream_id, level, count, line_bytes| GroupSum {
            stream_id,
            level,
            count,
            line_bytes,
        };
        assert_eq!(
            c.summary.groups,
            [
                group(3, 1, 2, 125),
                group(1, 0, 1, 0),
                group(300, 2, 1, 70_000)
            ]
        );
        assert_eq!(Summary::decode(&summary, 4).unwrap(), c.summary);
        assert!(Columns::decode((&summary, &rows), 3, i64::MIN).is_err());
        for cut in 0..summary.len() {
            assert!(Summary::decode(&summary[..cut], 4).is_err());
        }
        for cut in 0..rows.len() {
            assert!(Columns::decode((&summary, &rows[..cut]), 4, i64::MIN).is_err());
        }
        let mut longer = rows.clone();
        longer.push(0);
        assert!(Columns::decode((&summary, &longer), 4, i64::MIN).is_err());
    }

    #[test]
    fn too_many_or_too_long_levels_are_left_to_the_records() {
        let mut b = ColumnsBuilder::default();
        for i in 0..MAX_LEVELS + 2 {
            b.push(0, 1, 0, Some(format!("l{i}").as_bytes()));
        }
        b.push(0, 1, 0, Some(&[b'x'; MAX_LEVEL_BYTES + 1]));
        b.push(0, 1, 0, None);
        let c = decode(&b, MAX_LEVELS + 4, 0).unwrap();
        assert_eq!(c.summary.levels.len(), MAX_LEVELS);
        assert_eq!(
            &c.rows.level[MAX_LEVELS..],
            [LEVEL_UNLISTED; 3]
                .into_iter()
                .chain([0])
                .collect::<Vec<_>>()
        );
        assert_eq!(c.level_of(MAX_LEVELS), None);
        assert_eq!(c.level_of(MAX_LEVELS + 3), Some(None));
        assert_eq!(c.level_of(0), Some(Some(&b"l0"[..])));
        assert!(!c.summary.levels_listed());
    }

    #[test]
    fn metadata_names_are_listed_until_there_are_too_many() {
        let mut b = ColumnsBuilder::default();
        b.push(0, 1, 0, None);
        b.note_name(b"trace_id");
        b.note_name(b"level");
        b.note_name(b"trace_id");
        let c = decode(&b, 1, 0).unwrap();
        assert_eq!(
            c.summary.names,
            Some(vec![b"trace_id".to_vec(), b"level".to_vec()])
        );
        for i in 0..MAX_NAMES {
            b.note_name(format!("n{i}").as_bytes());
        }
        let c = decode(&b, 1, 0).unwrap();
        assert_eq!(c.summary.names, None);
        let mut long = ColumnsBuilder::default();
        long.push(0, 1, 0, None);
        long.note_name(&[b'x'; MAX_NAME_BYTES + 1]);
        assert_eq!(decode(&long, 1, 0).unwrap().summary.names, None);
    }

    #[test]
    fn any_stream_finds_a_group_without_decoding_the_rest() {
        let mut b = ColumnsBuilder::default();
        b.push(0, 7, 10, Some(b"info"));
        b.push(0, 9, 20, None);
        b.note_name(b"trace_id");
        let (summary, _) = b.encode(0);
        assert_eq!(Summary::any_stream(&summary, 2, |id| id == 9), Ok(true));
        assert_eq!(Summary::any_stream(&summary, 2, |id| id == 8), Ok(false));
        assert!(Summary::any_stream(&summary, 3, |_| true).is_err());
        assert!(Summary::any_stream(&summary[..summary.len() - 1], 2, |id| id == 9).is_err());
    }

    #[test]
    fn groups_that_do_not_add_up_are_refused() {
        let mut b = ColumnsBuilder::default();
        b.push(0, 7, 10, Some(b"info"));
        b.push(0, 7, 20, Some(b"info"));
        let (mut bytes, _) = b.encode(0);
        // count, n, len, "info", m, k, then the one group: stream 7, level 1, 2 records.
        let at = 1 + 1 + 1 + 4 + 1 + 1 + 2;
        assert_eq!(bytes[at], 2);
        bytes[at] = 3;
        assert!(Summary::decode(&bytes, 2).unwrap_err().contains("add up"));
    }

    #[test]
    fn non_minimal_varints_are_refused() {
        assert!(Summary::decode(&[0x81, 0x00], 1).is_err());
    }
}
