//! What verify found: the kinds of break, one finding per break, and the report.
//!
//! Owns: [`Kind`], [`Finding`], [`Report`], their text and JSON forms, and the order in which
//! findings are reported (by segment, then sequence number), so that the first break comes
//! first.
//!
//! Must not: decide what is a break (the checks do) or touch files.

use std::fmt;

use serde::Serialize;

/// The kinds of break verify reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A stored value differs from what the record, the chain or a neighbour says it must be.
    Modified,
    /// A record (or a required row) that must be there is not.
    Deleted,
    /// A row that must not be there is.
    Inserted,
    /// A record sits at another sequence number than its own.
    Reordered,
    /// A record is a copy of another record.
    Duplicated,
    /// A segment file that must exist does not.
    SegmentMissing,
    /// A segment file holds another segment (renamed, swapped, or from another log).
    SegmentReplaced,
    /// The schema differs: an extra or changed table, index, trigger or view, or version.
    SchemaChanged,
    /// SQLite cannot read the file, or its own check fails.
    Corrupt,
    /// The seal chain does not verify under the pinned epoch-0 key, or does not match the
    /// records it seals.
    SealChain,
    /// An exported checkpoint disagrees with the ledger: rewritten, forked or truncated.
    Anchor,
}

impl Kind {
    /// Order among findings at one place: the most specific kind first, so that a moved or
    /// inserted block is reported as such rather than by the mismatches it causes.
    fn rank(self) -> u8 {
        match self {
            Kind::SegmentMissing => 0,
            Kind::SegmentReplaced => 1,
            Kind::SchemaChanged => 2,
            Kind::Corrupt => 3,
            Kind::Deleted => 4,
            Kind::Inserted => 5,
            Kind::Duplicated => 6,
            Kind::Reordered => 7,
            Kind::Modified => 8,
            Kind::SealChain => 9,
            Kind::Anchor => 10,
        }
    }

    /// The kind's identifier, the same in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Modified => "modified",
            Kind::Deleted => "deleted",
            Kind::Inserted => "inserted",
            Kind::Reordered => "reordered",
            Kind::Duplicated => "duplicated",
            Kind::SegmentMissing => "segment_missing",
            Kind::SegmentReplaced => "segment_replaced",
            Kind::SchemaChanged => "schema_changed",
            Kind::Corrupt => "corrupt",
            Kind::SealChain => "seal_chain",
            Kind::Anchor => "anchor",
        }
    }
}

/// One break, located as precisely as the evidence allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// Segment file name (for a missing segment, the name it should have).
    pub segment: String,
    /// Index of that segment, from its name; `null` in JSON for findings about
    /// `seals.sqlite` or an anchors file, which name that file in `segment` instead.
    #[serde(serialize_with = "index_or_null")]
    pub segment_index: u64,
    /// The sequence number at fault, where one is.
    pub seq: Option<u64>,
    /// What is at fault: a table and column, a file, a link.
    pub what: String,
    pub expected: String,
    pub found: String,
}

/// Findings outside any segment carry `u64::MAX` (so they sort last); JSON says `null`.
fn index_or_null<S: serde::Serializer>(index: &u64, s: S) -> Result<S::Ok, S::Error> {
    match *index {
        u64::MAX => s.serialize_none(),
        i => s.serialize_u64(i),
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.segment)?;
        if let Some(seq) = self.seq {
            write!(f, " seq {seq}")?;
        }
        write!(
            f,
            ": {}: expected {}, found {}",
            self.what, self.expected, self.found
        )
    }
}

/// Builds findings for one segment.
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub segment: String,
    pub segment_index: u64,
}

impl At {
    pub fn finding(
        &self,
        kind: Kind,
        seq: Option<u64>,
        what: &str,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Finding {
        Finding {
            kind,
            segment: self.segment.clone(),
            segment_index: self.segment_index,
            seq,
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

/// The outcome of a verify run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// "intact", "broken", or "inconclusive".
    pub verdict: &'static str,
    pub segments: usize,
    pub entries: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub entries_per_second: f64,
    /// Sequence number the next record will get (one past the last checked).
    pub next_seq: u64,
    /// Head after the last checked record, hex.
    pub head: String,
    /// The first break, by segment then sequence number.
    pub first_break: Option<Finding>,
    /// Every break found, first break first (capped per segment chunk).
    pub findings: Vec<Finding>,
    /// Facts worth knowing that are not breaks.
    pub notes: Vec<String>,
    /// Why the run could not conclude although nothing broke (exit 2).
    pub inconclusive: Vec<String>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The one-line summary printed at the end of a run.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} segments, {} entries, {} bytes, {:.2} s, {:.0} entries/s",
            self.verdict,
            self.segments,
            self.entries,
            self.bytes,
            self.seconds,
            self.entries_per_second
        )
    }
}

/// Orders findings by segment, then sequence number (findings without one last), and drops
/// repeats of the same kind at the same place.
pub(crate) fn sort_findings(findings: &mut Vec<Finding>) {
    findings.sort_by_key(|f| (f.segment_index, f.seq.is_none(), f.seq, f.kind.rank()));
    findings.dedup_by(|a, b| {
        a.segment_index == b.segment_index && a.seq == b.seq && a.seq.is_some() && a.kind == b.kind
    });
}
