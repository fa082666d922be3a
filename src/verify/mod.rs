//! The offline audit of a ledger: every segment opened read-only, every record re-hashed,
//! every link checked, and a report naming the first break.
//!
//! Owns: the order of the audit (structure of each segment, links between segments, then
//! the records in parallel chunks), and the exit codes the CLI gives it.
//!
//! Must not: write, repair, or assume the server is stopped. It reads a live data directory
//! (the open segment through its WAL, read-only) as well as a copy. It holds no SQL: every
//! segment file is read through `store::audit`, and the seal chain through `seal`.
//!
//! Layout: `structure` (per-segment checks), `links` (between segments), `rows` (the walk
//! over records), `seals` (the seal chain, with the pinned key), `anchors` (checkpoints an
//! auditor kept), `state` (resuming from a previous run), `work` (the parallel phase),
//! `pool` (its threads), `report` (findings and the report).

mod anchors;
mod links;
mod pool;
mod report;
mod rows;
mod seals;
mod state;
mod structure;
mod work;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use anchors::AnchorFile;
pub use report::{Finding, Kind, Report};

use crate::store;
use crate::store::audit;

/// Exit status: the ledger verified intact.
pub const EXIT_INTACT: u8 = 0;
/// Exit status: integrity failure (tamper evidence or corruption).
pub const EXIT_BROKEN: u8 = 1;
/// Exit status: verify could not run or conclude.
pub const EXIT_CANNOT_RUN: u8 = 2;

/// What to verify.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    /// Threads to use (at least 1).
    pub jobs: usize,
    /// The operator's copy of the epoch-0 public key; without it the seal chain is not
    /// checked (and the report says so).
    pub pubkey: Option<[u8; 32]>,
    /// The operator's checkpoint verifier key and files of exported checkpoints.
    pub anchors: Option<(crate::seal::note::VKey, Vec<AnchorFile>)>,
    /// The operator's retention policy: segments removed under prune seals must have been
    /// kept at least this long after their close.
    pub retention: Option<std::time::Duration>,
    /// Incremental mode: where the last intact run stopped; rewritten after an intact run.
    pub state: Option<PathBuf>,
}

/// Counters a caller may watch while verify runs (for a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// Records expected in all, known once every segment was scanned.
    pub total: AtomicU64,
    /// Records checked so far.
    pub done: AtomicU64,
}

/// Why verify could not conclude.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no ledger at {0} (no segments directory)")]
    NoLedger(PathBuf),
    #[error("no segment files in {0}")]
    Empty(PathBuf),
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("state file: {0}")]
    State(String),
    /// Retention removed every segment this run had listed before it could read them.
    #[error(
        "every segment listed in {0} was removed while this run read it (retention on a live ledger); run again"
    )]
    AllRemoved(PathBuf),
}

/// Audits the ledger under `opts.data_dir`.
pub fn run(opts: &Options, progress: &Progress) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let files = match list_segments(opts) {
        Err(e @ (VerifyError::NoLedger(_) | VerifyError::Empty(_))) => {
            return no_segments_under_seals(opts, started).ok_or(e);
        }
        r => r?,
    };
    let jobs = opts.jobs.max(1);
    let mut scans = pool::run(jobs, &files, |(index, path)| structure::scan(*index, path));
    crate::failpoint::pause(crate::failpoint::at::VERIFY_AFTER_SCAN);
    let resume = resume(opts, &scans)?;
    let through = resume.as_ref().and_then(|r| r.verified_through);
    let skipped =
        |s: &structure::Scan| s.close.is_some() && through.is_some_and(|k| s.at.segment_index <= k);
    let chunks = work::chunks(&scans, &skipped);
    progress
        .total
        .store(chunks.iter().map(|c| c.hi - c.lo).sum(), Ordering::Relaxed);
    let done = work::heavy_work(jobs, &scans, &chunks, &skipped, progress);
    let gone = work::gone_since_listed(&scans);
    let (mut findings, entries) = work::take_results(done, &mut scans, &gone);
    let during_run = forget_gone(&mut scans, &gone, opts)?;
    findings.extend(scans.iter().flat_map(|s| s.findings.iter().cloned()));
    let (next_seq, head) = tip(&scans);
    let mut facts = seal_facts(opts, &scans, next_seq, resume.as_ref());
    let start = match (&facts.pruned_last, facts.unchecked_prune) {
        (Some(c), _) => links::Start::AfterPruned(c),
        (None, true) => links::Start::Unchecked,
        (None, false) => links::Start::Genesis,
    };
    let (link_findings, mut notes) = links::check(&scans, start);
    notes.extend(scans.iter().flat_map(|s| s.notes.iter().cloned()));
    notes.extend(during_run);
    findings.extend(link_findings);
    findings.append(&mut facts.findings);
    notes.append(&mut facts.notes);
    report::sort_findings(&mut findings);
    if let Some((vkey, files)) = &opts.anchors {
        let (f, n) = anchors::check(vkey, files, &scans, next_seq, &opts.data_dir);
        findings.extend(f);
        notes.extend(n);
    }
    if let Some(k) = through {
        notes.push(format!(
            "incremental: segments up to {} were verified by the run the state file records \
             and skipped",
            audit::file_name(k)
        ));
    }
    save_state(opts, &facts, &findings, &mut notes)?;
    let tally = Tally {
        segments: scans.len(),
        entries,
        bytes: scans.iter().map(|s| s.bytes).sum(),
        seconds: started.elapsed().as_secs_f64(),
        next_seq,
        head,
    };
    Ok(report(tally, findings, notes, facts.inconclusive))
}

/// The segment files to audit; an error if there is no ledger or no segment.
fn list_segments(opts: &Options) -> Result<Vec<(u64, PathBuf)>, VerifyError> {
    let dir = store::segments_dir(&opts.data_dir);
    if !dir.is_dir() {
        return Err(VerifyError::NoLedger(opts.data_dir.clone()));
    }
    let files = audit::segment_files(&opts.data_dir)?;
    if files.is_empty() {
        return Err(VerifyError::Empty(dir));
    }
    Ok(files)
}

/// No segment file is left but seals remain: the seals say entries existed, so the segments
/// were removed (a break, never an operator's mistake). `None` when there are no seals
/// either (then this is not a ledger's directory).
fn no_segments_under_seals(opts: &Options, started: Instant) -> Option<Report> {
    let seals = crate::seal::chain_db::read_all(&opts.data_dir).ok()??;
    let last = seals.last()?;
    let covered = crate::seal::record::Seal::decode(&last.body)
        .map(|s| (s.first_seq + s.count).to_string())
        .unwrap_or_else(|_| "an unreadable number of".into());
    let at = report::At {
        segment: audit::file_name(0),
        segment_index: 0,
    };
    let what = format!(
        "segment files (seals.sqlite holds {} seals, the newest covering {covered} records)",
        seals.len()
    );
    let mut findings = vec![at.finding(
        Kind::SegmentMissing,
        Some(0),
        &what,
        "segment files from 0",
        "none",
    )];
    let mut facts = seal_facts(opts, &[], 0, None);
    findings.append(&mut facts.findings);
    let tally = Tally {
        segments: 0,
        entries: 0,
        bytes: 0,
        seconds: started.elapsed().as_secs_f64(),
        next_seq: 0,
        head: String::new(),
    };
    Some(report(tally, findings, facts.notes, facts.inconclusive))
}

/// Drops the scans of segments gone during the run, and says so.
fn forget_gone(
    scans: &mut Vec<structure::Scan>,
    gone: &BTreeSet<u64>,
    opts: &Options,
) -> Result<Vec<String>, VerifyError> {
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    scans.retain(|s| !gone.contains(&s.at.segment_index));
    if scans.is_empty() {
        return Err(VerifyError::AllRemoved(store::segments_dir(&opts.data_dir)));
    }
    Ok(vec![format!(
        "{} segment(s) disappeared while this run read them ({} to {}), as retention \
         removes them on a live ledger; they are judged as absent from the start",
        gone.len(),
        audit::file_name(*gone.first().unwrap_or(&0)),
        audit::file_name(*gone.last().unwrap_or(&0)),
    )])
}

/// What the seal chain says, when the operator gave the pinned key; otherwise a note if
/// there are seals that went unchecked.
fn seal_facts(
    opts: &Options,
    scans: &[structure::Scan],
    next_seq: u64,
    resume: Option<&state::Resume>,
) -> seals::SealFacts {
    let mut facts = seals::SealFacts::default();
    match &opts.pubkey {
        Some(pk0) => {
            let policy = seals::Policy {
                pk0,
                retention: opts.retention,
                now_ns: crate::clock::now_ns(),
                resume,
            };
            facts = seals::check(&opts.data_dir, policy, scans, next_seq);
        }
        None if crate::seal::chain_db::seals_path(&opts.data_dir).exists() => {
            facts.notes.push(
                "seals present but not checked: pass --pubkey with your off-box copy of the \
                 epoch-0 public key"
                    .into(),
            );
            unchecked_prune(opts, scans, &mut facts);
        }
        None => {}
    }
    seals_schema(opts, &mut facts);
    facts
}

/// `seals.sqlite`, when there is one, holds exactly its schema (with or without the key: an
/// extra table there is a place to hide things, whatever the signatures say).
fn seals_schema(opts: &Options, facts: &mut seals::SealFacts) {
    use crate::seal::chain_db;
    if !chain_db::seals_path(&opts.data_dir).exists() {
        return;
    }
    let at = report::At {
        segment: chain_db::SEALS_FILE.into(),
        segment_index: u64::MAX,
    };
    match chain_db::schema_mismatch(&opts.data_dir) {
        Ok(None) => {}
        Ok(Some((expected, found))) => facts.findings.push(at.finding(
            Kind::SchemaChanged,
            None,
            "seals.sqlite schema",
            expected,
            found,
        )),
        Err(e) => facts.findings.push(at.finding(
            Kind::Corrupt,
            None,
            "seals.sqlite",
            "a readable SQLite file",
            e,
        )),
    }
}

/// Without the key, oldest segments absent under prune seals cannot be judged either way:
/// the run is inconclusive (exit 2), not broken. Absent segments with no prune seal at all
/// stay a finding.
fn unchecked_prune(opts: &Options, scans: &[structure::Scan], facts: &mut seals::SealFacts) {
    let oldest = scans.first().map_or(0, |s| s.at.segment_index);
    let prunes = crate::seal::chain_db::read_kind(
        &opts.data_dir,
        crate::seal::record::SealKind::Prune as u8,
    );
    if oldest == 0 || !matches!(prunes, Ok(Some(p)) if !p.is_empty()) {
        return;
    }
    facts.unchecked_prune = true;
    facts.inconclusive.push(format!(
        "segments before {} are absent and seals.sqlite holds prune seals, which only \
         --pubkey can check: pass --pubkey with your off-box copy of the epoch-0 public key",
        audit::file_name(oldest)
    ));
}

/// Writes the state file for the next incremental run, only after an intact run.
fn save_state(
    opts: &Options,
    facts: &seals::SealFacts,
    findings: &[Finding],
    notes: &mut Vec<String>,
) -> Result<(), VerifyError> {
    let intact = findings.is_empty() && facts.inconclusive.is_empty();
    if let (Some(path), Some(r), true) = (&opts.state, &facts.resume, intact) {
        state::write(path, r).map_err(VerifyError::State)?;
        notes.push(format!(
            "state written to {} (epoch {})",
            path.display(),
            r.start.epoch
        ));
    }
    Ok(())
}

/// The counts a report gives.
struct Tally {
    segments: usize,
    entries: u64,
    bytes: u64,
    seconds: f64,
    next_seq: u64,
    head: String,
}

fn report(
    t: Tally,
    findings: Vec<Finding>,
    notes: Vec<String>,
    inconclusive: Vec<String>,
) -> Report {
    Report {
        verdict: match (findings.is_empty(), inconclusive.is_empty()) {
            (false, _) => "broken",
            (true, false) => "inconclusive",
            (true, true) => "intact",
        },
        inconclusive,
        segments: t.segments,
        entries: t.entries,
        bytes: t.bytes,
        seconds: t.seconds,
        entries_per_second: if t.seconds > 0.0 {
            t.entries as f64 / t.seconds
        } else {
            0.0
        },
        next_seq: t.next_seq,
        head: t.head,
        first_break: findings.first().cloned(),
        findings,
        notes,
    }
}

/// The state an incremental run resumes from, checked against the options and the ledger.
fn resume(opts: &Options, scans: &[structure::Scan]) -> Result<Option<state::Resume>, VerifyError> {
    let Some(path) = &opts.state else {
        return Ok(None);
    };
    let Some(pk0) = opts.pubkey else {
        return Err(VerifyError::State("--state needs --pubkey".into()));
    };
    let Some(r) = state::read(path).map_err(VerifyError::State)? else {
        return Ok(None);
    };
    if r.pk0 != pk0 {
        return Err(VerifyError::State(format!(
            "{} was written with another epoch-0 key",
            path.display()
        )));
    }
    let meta = scans.iter().find_map(|s| s.meta.as_ref());
    if meta.is_some_and(|m| m.origin != r.origin || hex::encode(m.log_id) != r.log_id) {
        return Err(VerifyError::State(format!(
            "{} belongs to another log",
            path.display()
        )));
    }
    Ok(Some(r))
}

/// The next seq and the head after the last record of the newest readable segment.
fn tip(scans: &[structure::Scan]) -> (u64, String) {
    let Some(last) = scans.iter().rev().find(|s| s.meta.is_some()) else {
        return (0, String::new());
    };
    match (&last.meta, last.seqs, last.last_head) {
        (_, Some((_, max, _)), Some(head)) => (max + 1, hex::encode(head)),
        (Some(meta), _, _) => (meta.first_seq, hex::encode(meta.prev_head)),
        _ => (0, String::new()),
    }
}

/// The exit status for a finished run.
pub fn exit_code(report: &Report) -> u8 {
    if !report.intact() {
        EXIT_BROKEN
    } else if !report.inconclusive.is_empty() {
        EXIT_CANNOT_RUN
    } else {
        EXIT_INTACT
    }
}
