//! The canonical record encoding (`ENTRY_V1`) and the blake3 hash chain.
//!
//! Owns: the byte layout of a record, its decoder, the leaf, chain and genesis hashes and
//! their context strings. This is the one definition of the format; `VERIFY.md` documents it
//! byte for byte and `tests/it/golden_chain.rs` pins it with vectors.
//!
//! Must not: do I/O, know about SQLite, or change a byte without a new version number.

mod decode;

use std::ops::Range;

pub use decode::{View, decode, decode_pairs, raw_pairs};

/// A blake3 digest.
pub type Hash = [u8; 32];

/// Version byte of the only record encoding so far.
pub const ENTRY_VERSION: u8 = 1;

/// Length of the random log id that, with the origin, makes every log's genesis unique.
pub const LOG_ID_LEN: usize = 16;

/// Largest length of one length-prefixed string (`bstr`). Bounds what a decoder allocates
/// and what one field may hold; far above any line the push plane accepts.
pub const MAX_BSTR: usize = 16 << 20;

/// Context strings for blake3's derive-key mode; globally unique, never reused.
pub const CTX_LEAF: &str = "daftari v1 entry leaf";
pub const CTX_CHAIN: &str = "daftari v1 chain";
pub const CTX_GENESIS: &str = "daftari v1 genesis";
pub const CTX_SEGMENT_FILE: &str = "daftari v1 segment file";

/// Offset of the `seq` field inside an encoded record (right after the version byte).
const SEQ_OFFSET: usize = 1;

/// Errors of building or decoding a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("duplicate name {0:?}")]
    DuplicateName(String),
    #[error("{field} is {len} bytes, over the {max}-byte limit")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("record ends early while reading {0}")]
    Truncated(&'static str),
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("{0} bytes follow the end of the record")]
    Trailing(usize),
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
    #[error("{0} are not sorted by name")]
    Unsorted(&'static str),
}

/// A sorted list of name/value pairs with unique names: stream labels or structured metadata.
///
/// Sorting is bytewise by name. Because names are unique this is also the (name, value) order
/// that the format asks of metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pairs(Vec<(String, String)>);

impl Pairs {
    /// Sorts `pairs` by name and refuses duplicate names.
    ///
    /// ```
    /// use daftari::store::Pairs;
    /// let labels = Pairs::new(vec![("job".into(), "sshd".into()), ("host".into(), "a".into())]).unwrap();
    /// assert_eq!(labels.iter().collect::<Vec<_>>(), [("host", "a"), ("job", "sshd")]);
    /// assert!(Pairs::new(vec![("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
    /// ```
    pub fn new(mut pairs: Vec<(String, String)>) -> Result<Self, FormatError> {
        pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(FormatError::DuplicateName(w[0].0.clone()));
        }
        Ok(Self(pairs))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}

/// The fields of one record, as the ledger stores and hashes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Global sequence number: contiguous from 0 across segments, assigned by the writer.
    pub seq: u64,
    /// The sink's wall clock (Unix ns) when the batch was accepted.
    pub recv_ns: i64,
    /// The client's timestamp (Unix ns).
    pub ts_ns: i64,
    /// Identity of the authenticated token that pushed the entry; never client-supplied.
    pub source: String,
    /// `X-Scope-OrgID` as sent, or empty. Recorded, never trusted.
    pub tenant: String,
    pub labels: Pairs,
    pub metadata: Pairs,
    /// The exact line bytes as decoded from the request.
    pub line: Vec<u8>,
}

/// An encoded record plus where its parts lie, so the writer can patch the sequence number
/// and index the stream without decoding again.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// The labels section (`u32 n` and the pairs): the stream's identity inside a segment.
    pub labels: Range<usize>,
}

impl Encoded {
    pub fn labels_bytes(&self) -> &[u8] {
        &self.bytes[self.labels.clone()]
    }
}

/// Encodes `record` as `ENTRY_V1`, checking every length against [`MAX_BSTR`].
pub fn encode(record: &Record) -> Result<Encoded, FormatError> {
    let labels = encode_pairs(&record.labels, "label")?;
    let mut bytes = Vec::new();
    let fields = Fields {
        seq: record.seq,
        recv_ns: record.recv_ns,
        ts_ns: record.ts_ns,
        source: &record.source,
        tenant: &record.tenant,
        labels: &labels,
    };
    let labels = encode_into(&mut bytes, &fields, &record.metadata, &record.line)?;
    Ok(Encoded { bytes, labels })
}

/// The fields of a record that a batch shares, or that come before its per-entry parts; the
/// labels as an already encoded `pairs` section (see [`encode_pairs`]).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: u64,
    pub recv_ns: i64,
    pub ts_ns: i64,
    pub source: &'a str,
    pub tenant: &'a str,
    pub labels: &'a [u8],
}

/// Appends one `ENTRY_V1` record to `out`; returns the range of its labels section in `out`.
/// This is how the append handle encodes a whole batch into one buffer, with each stream's
/// labels section encoded once.
pub fn encode_into(
    out: &mut Vec<u8>,
    f: &Fields<'_>,
    metadata: &Pairs,
    line: &[u8],
) -> Result<Range<usize>, FormatError> {
    let start = out.len();
    let result = (|| {
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&f.seq.to_be_bytes());
        out.extend_from_slice(&f.recv_ns.to_be_bytes());
        out.extend_from_slice(&f.ts_ns.to_be_bytes());
        put_bstr(out, "source", f.source.as_bytes())?;
        put_bstr(out, "tenant", f.tenant.as_bytes())?;
        let labels = out.len()..out.len() + f.labels.len();
        out.extend_from_slice(f.labels);
        put_pairs(out, "metadata", metadata)?;
        put_bstr(out, "line", line)?;
        Ok(labels)
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Encodes a `pairs` section: `u32` count, then (`bstr` name, `bstr` value) in order.
pub fn encode_pairs(pairs: &Pairs, field: &'static str) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(
        4 + pairs
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>(),
    );
    put_pairs(&mut out, field, pairs)?;
    Ok(out)
}

/// Writes `seq` into an encoded record (the writer assigns sequence numbers at commit time).
pub fn set_seq(record: &mut [u8], seq: u64) {
    record[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_be_bytes());
}

fn put_bstr(out: &mut Vec<u8>, field: &'static str, bytes: &[u8]) -> Result<(), FormatError> {
    if bytes.len() > MAX_BSTR {
        return Err(FormatError::TooLong {
            field,
            len: bytes.len(),
            max: MAX_BSTR,
        });
    }
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_pairs(out: &mut Vec<u8>, field: &'static str, pairs: &Pairs) -> Result<(), FormatError> {
    out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    for (name, value) in pairs.iter() {
        put_bstr(out, field, name.as_bytes())?;
        put_bstr(out, field, value.as_bytes())?;
    }
    Ok(())
}

/// Prepared blake3 hashers for the leaf and chain contexts. Cloning a keyed hasher is much
/// cheaper than deriving the context key for every entry.
#[derive(Debug, Clone)]
pub struct Hasher {
    leaf: blake3::Hasher,
    chain: blake3::Hasher,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            leaf: blake3::Hasher::new_derive_key(CTX_LEAF),
            chain: blake3::Hasher::new_derive_key(CTX_CHAIN),
        }
    }
}

impl Hasher {
    /// `leaf_n = blake3_derive("daftari v1 entry leaf", ENTRY_V1_n)`.
    pub fn leaf(&self, canon: &[u8]) -> Hash {
        let mut h = self.leaf.clone();
        h.update(canon);
        *h.finalize().as_bytes()
    }

    /// `head_n = blake3_derive("daftari v1 chain", head_{n-1} ‖ leaf_n)`.
    pub fn link(&self, prev_head: &Hash, leaf: &Hash) -> Hash {
        let mut h = self.chain.clone();
        h.update(prev_head);
        h.update(leaf);
        *h.finalize().as_bytes()
    }

    /// The head after appending `canon` to a chain whose head is `prev_head`.
    pub fn next_head(&self, prev_head: &Hash, canon: &[u8]) -> Hash {
        self.link(prev_head, &self.leaf(canon))
    }
}

/// `head_-1 = blake3_derive("daftari v1 genesis", bstr(origin) ‖ log_id)`: the chain's start,
/// bound to this log so that no two logs share a chain.
///
/// ```
/// // The worked example of VERIFY.md.
/// let log_id: [u8; 16] = std::array::from_fn(|i| i as u8);
/// let head = daftari::store::chain::genesis("golden.daftari.example/log", &log_id);
/// assert_eq!(hex::encode(head), "7f004573f170d2d6eaad52ac3204e87a5dc0832830fe0597d6bfb277de3ecaf1");
/// ```
pub fn genesis(origin: &str, log_id: &[u8; LOG_ID_LEN]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(CTX_GENESIS);
    h.update(&(origin.len() as u32).to_be_bytes());
    h.update(origin.as_bytes());
    h.update(log_id);
    *h.finalize().as_bytes()
}

/// A hasher for the bytes of a closed segment file (`file_blake3`).
pub fn segment_file_hasher() -> blake3::Hasher {
    blake3::Hasher::new_derive_key(CTX_SEGMENT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            seq: 7,
            recv_ns: 1,
            ts_ns: -2,
            source: "host-a".into(),
            tenant: String::new(),
            labels: Pairs::new(vec![
                ("job".into(), "sshd".into()),
                ("host".into(), "a".into()),
            ])
            .unwrap(),
            metadata: Pairs::default(),
            line: b"Failed password".to_vec(),
        }
    }

    #[test]
    fn decode_inverts_encode() {
        let r = record();
        let enc = encode(&r).unwrap();
        let view = decode(&enc.bytes).unwrap();
        assert_eq!(view.labels, enc.labels_bytes());
        assert_eq!(view.to_record().unwrap(), r);
    }

    #[test]
    fn set_seq_patches_only_the_sequence_number() {
        let mut r = record();
        let mut enc = encode(&r).unwrap();
        set_seq(&mut enc.bytes, 99);
        r.seq = 99;
        assert_eq!(enc.bytes, encode(&r).unwrap().bytes);
    }

    #[test]
    fn pairs_refuse_duplicate_names() {
        let dup = Pairs::new(vec![("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(dup, Err(FormatError::DuplicateName("a".into())));
    }

    #[test]
    fn decode_refuses_non_utf8_wherever_the_format_has_strings() {
        let mut r = record();
        r.metadata = Pairs::new(vec![("user".into(), "root".into())]).unwrap();
        let bytes = encode(&r).unwrap().bytes;
        // Each string of the record, found by its bytes: source, a label name, a label
        // value, a metadata name, a metadata value.
        let cases = [
            (&b"host-a"[..], "source"),
            (b"job", "labels"),
            (b"sshd", "labels"),
            (b"user", "metadata"),
            (b"root", "metadata"),
        ];
        for (text, field) in cases {
            let at = bytes.windows(text.len()).position(|w| w == text).unwrap();
            let mut bad = bytes.clone();
            bad[at] = 0xff;
            assert_eq!(
                decode(&bad).unwrap_err(),
                FormatError::Utf8(field),
                "{field}"
            );
        }
        // The line is bytes.
        let at = bytes.len() - 1;
        let mut line = bytes.clone();
        line[at] = 0xff;
        assert!(decode(&line).is_ok());
    }

    #[test]
    fn decode_rejects_trailing_and_truncated_bytes() {
        let mut bytes = encode(&record()).unwrap().bytes;
        bytes.push(0);
        assert_eq!(decode(&bytes).unwrap_err(), FormatError::Trailing(1));
        bytes.truncate(bytes.len() - 3);
        assert!(matches!(decode(&bytes), Err(FormatError::Truncated(_))));
    }

    #[test]
    fn decode_rejects_unsorted_labels() {
        let r = record();
        let mut enc = encode(&r).unwrap();
        // Swap the two label pairs in place: "host"="a" and "job"="sshd" have different sizes,
        // so rebuild the section by hand in the wrong order.
        let mut section = Vec::new();
        section.extend_from_slice(&2u32.to_be_bytes());
        for (n, v) in [("job", "sshd"), ("host", "a")] {
            for s in [n, v] {
                section.extend_from_slice(&(s.len() as u32).to_be_bytes());
                section.extend_from_slice(s.as_bytes());
            }
        }
        enc.bytes.splice(enc.labels.clone(), section);
        assert_eq!(
            decode(&enc.bytes).unwrap_err(),
            FormatError::Unsorted("labels")
        );
    }
}
