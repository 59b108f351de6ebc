//! The journal: the embedded log's durable record.
//!
//! A disclosure is durable once its frame is in the journal and `fdatasync` returned: one
//! `pwrite` of the batch's frames into a file whose blocks already exist, and one flush. SQLite
//! is the index the `audit` commands read. It is built from the same rows in bulk, a fraction of
//! a second behind (the indexer thread, `index.rs`), and by whoever opens the log next after a
//! crash (the writer at open, and every reader: [`catch_up`](crate::catch_up)). Each SQLite commit costs about
//! eight 4 KiB pages and an fsync: per record at a few hundred disclosures a second, not per
//! batch of a thousand (crates/headwall-audit/BENCH.md, 2026-12-03).
//!
//! Two files beside the database, `audit.journal.0` and `audit.journal.1`, each written from
//! offset 0. When the active file has passed [`SWITCH_AT`] and every record in the other one is
//! in SQLite (durably: the indexer commits with `synchronous = FULL`), the writer switches and
//! overwrites the other from its start. Frames carry a sequence number that never repeats, so
//! what is left of an older cycle after the newest frame is told apart from it.
//!
//! A frame is `[u32 length of the rest][u64 seq][u8 chain][the row]` (little-endian), the row
//! as length-prefixed fields. Its integrity check is the record's own chain hash: a frame is
//! taken only when its row hashes to the hash it carries and links to the record before it, so
//! a torn write (the writer killed mid-`pwrite`) or the remains of an older cycle end the
//! journal where they start. A torn frame was never acknowledged: its request went out without
//! identity.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::record::{DisclosureRow, EventRow};
use crate::writer::Chain;

/// The active file is switched once it holds this much and the other one is indexed.
pub(crate) const SWITCH_AT: u64 = 8 << 20;
/// Each file is written with zeros up to here when created, so appends overwrite blocks that
/// already exist (an `fdatasync` then flushes data only, no allocation to journal).
const PREALLOCATE: u64 = SWITCH_AT + (1 << 20);
/// A frame longer than this is not a frame (records are a few hundred bytes; an event's detail
/// is bounded by its writers).
const MAX_FRAME: usize = 1 << 20;
/// Bytes before a frame's row: length, seq, chain.
const FRAME_HEAD: usize = 4 + 8 + 1;

/// The two journal files beside `database` (`audit.db` -> `audit.journal.0`, `.1`).
pub fn journal_paths(database: &Path) -> [PathBuf; 2] {
    [
        database.with_extension("journal.0"),
        database.with_extension("journal.1"),
    ]
}

/// One record as the journal holds it.
#[derive(Clone)]
pub(crate) enum Row {
    Disclosure(DisclosureRow),
    Event(EventRow),
}

impl Row {
    pub(crate) fn chain(&self) -> Chain {
        match self {
            Row::Disclosure(_) => Chain::Disclosures,
            Row::Event(_) => Chain::Events,
        }
    }

    pub(crate) fn id(&self) -> i64 {
        match self {
            Row::Disclosure(row) => row.id,
            Row::Event(row) => row.id,
        }
    }

    pub(crate) fn prev_hash(&self) -> &str {
        match self {
            Row::Disclosure(row) => &row.prev_hash,
            Row::Event(row) => &row.prev_hash,
        }
    }

    pub(crate) fn hash(&self) -> &str {
        match self {
            Row::Disclosure(row) => &row.hash,
            Row::Event(row) => &row.hash,
        }
    }

    pub(crate) fn ts(&self) -> i64 {
        match self {
            Row::Disclosure(row) => row.ts,
            Row::Event(row) => row.ts,
        }
    }

    /// Whether the row's fields hash to the hash it carries.
    fn intact(&self) -> bool {
        match self {
            Row::Disclosure(row) => row.computed_hash() == row.hash,
            Row::Event(row) => row.computed_hash() == row.hash,
        }
    }
}

/// Appends `row` as a frame numbered `seq`.
pub(crate) fn encode(buffer: &mut Vec<u8>, seq: u64, row: &Row) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; 4]);
    buffer.extend_from_slice(&seq.to_le_bytes());
    match row {
        Row::Disclosure(row) => {
            buffer.push(1);
            put_i64(buffer, row.id);
            put_i64(buffer, row.ts);
            for field in [
                &row.request_id,
                &row.partner,
                &row.purpose,
                &row.msisdn,
                &row.kinds,
                &row.headers,
                &row.host,
            ] {
                put_str(buffer, field);
            }
            buffer.extend_from_slice(&row.port.to_le_bytes());
            for field in [
                &row.upstream_ip,
                &row.client_ip,
                &row.policy_hash,
                &row.prev_hash,
                &row.hash,
            ] {
                put_str(buffer, field);
            }
        }
        Row::Event(row) => {
            buffer.push(2);
            put_i64(buffer, row.id);
            put_i64(buffer, row.ts);
            for field in [&row.kind, &row.detail, &row.prev_hash, &row.hash] {
                put_str(buffer, field);
            }
        }
    }
    // Rows are bounded far below 4 GiB (MAX_FRAME is checked when reading).
    let length = u32::try_from(buffer.len() - start - 4).unwrap_or(u32::MAX);
    buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

fn put_i64(buffer: &mut Vec<u8>, value: i64) {
    buffer.extend_from_slice(&value.to_le_bytes());
}

fn put_str(buffer: &mut Vec<u8>, value: &str) {
    let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(value.as_bytes());
}

/// Reads fields out of one frame's row; `None` at the first thing that does not fit.
struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(taken)
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let length = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        let bytes = self.take(usize::try_from(length).ok()?)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// Decodes the row of the frame at `start..end` of `bytes` (as [`locate`] found it): `None`
/// for anything but a whole, intact row (a torn or foreign region, or a row that does not hash
/// to its own hash).
pub(crate) fn decode(bytes: &[u8]) -> Option<Row> {
    let mut fields = Fields {
        bytes: bytes.get(FRAME_HEAD..)?,
    };
    let row = match bytes.get(FRAME_HEAD - 1)? {
        1 => Row::Disclosure(DisclosureRow {
            id: fields.i64()?,
            ts: fields.i64()?,
            request_id: fields.string()?,
            partner: fields.string()?,
            purpose: fields.string()?,
            msisdn: fields.string()?,
            kinds: fields.string()?,
            headers: fields.string()?,
            host: fields.string()?,
            port: fields.u16()?,
            upstream_ip: fields.string()?,
            client_ip: fields.string()?,
            policy_hash: fields.string()?,
            prev_hash: fields.string()?,
            hash: fields.string()?,
        }),
        2 => Row::Event(EventRow {
            id: fields.i64()?,
            ts: fields.i64()?,
            kind: fields.string()?,
            detail: fields.string()?,
            prev_hash: fields.string()?,
            hash: fields.string()?,
        }),
        _ => return None,
    };
    (fields.bytes.is_empty() && row.intact()).then_some(row)
}

/// A frame found by its head alone: where it is, its seq, and which record it claims to hold.
#[derive(Debug, Clone, Copy)]
struct Located {
    seq: u64,
    chain: Chain,
    id: i64,
    start: usize,
    end: usize,
}

/// How much of a file is read at a time while its run goes on.
const READ_CHUNK: usize = 1 << 20;

/// What the bytes at an offset are.
enum Step {
    Frame(Located),
    /// Too few bytes read yet to tell.
    More,
    /// Not a frame: the run ends here.
    End,
}

/// Reads the run of frames at the start of `reader`, chunk by chunk, by their heads, while each
/// follows the one before (seq + 1), and stops reading where the run ends (a file is mostly
/// written over: what follows the newest frame is never read). Only heads are read, so finding
/// the end is cheap; a row is checked when it is decoded. The last frame of the run is checked
/// here: a torn write can only be the last one (what follows it is not the next seq).
fn read_run(mut reader: impl Read) -> io::Result<(Vec<u8>, Vec<Located>)> {
    let mut bytes = Vec::new();
    let mut frames: Vec<Located> = Vec::new();
    let mut start = 0;
    let mut at_end = false;
    loop {
        match locate_one(&bytes, start) {
            Step::Frame(frame) => {
                if frames.last().is_some_and(|last| frame.seq != last.seq + 1) {
                    break;
                }
                start = frame.end;
                frames.push(frame);
            }
            Step::More if !at_end => {
                let had = bytes.len();
                let read = reader
                    .by_ref()
                    .take(READ_CHUNK as u64)
                    .read_to_end(&mut bytes)?;
                at_end = read == 0;
                debug_assert!(bytes.len() == had + read);
            }
            Step::More | Step::End => break,
        }
    }
    if let Some(last) = frames.last()
        && decode(&bytes[last.start..last.end]).is_none()
    {
        frames.pop();
    }
    Ok((bytes, frames))
}

fn locate_one(bytes: &[u8], start: usize) -> Step {
    let rest = bytes.get(start..).unwrap_or_default();
    let Some(head) = rest.get(..FRAME_HEAD + 8) else {
        return Step::More;
    };
    let field = |range: std::ops::Range<usize>| {
        let mut value = [0; 8];
        value[..range.len()].copy_from_slice(&head[range]);
        u64::from_le_bytes(value)
    };
    let length = usize::try_from(field(0..4)).unwrap_or(usize::MAX);
    if !(FRAME_HEAD - 4 + 8..=MAX_FRAME).contains(&length) {
        return Step::End;
    }
    let chain = match head[12] {
        1 => Chain::Disclosures,
        2 => Chain::Events,
        _ => return Step::End,
    };
    if rest.len() < 4 + length {
        return Step::More;
    }
    Step::Frame(Located {
        seq: field(4..12),
        chain,
        id: i64::from_le_bytes(field(13..21).to_le_bytes()),
        start,
        end: start + 4 + length,
    })
}

/// The head of the first frame of the file at `path`, if it has one.
fn first_frame(path: &Path) -> io::Result<Option<Located>> {
    let mut head = Vec::with_capacity(FRAME_HEAD + 8);
    match File::open(path) {
        Ok(file) => {
            file.take((FRAME_HEAD + 8) as u64).read_to_end(&mut head)?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    }
    let mut padded = head;
    // Only the head is wanted: pretend the rest of the frame is there.
    padded.resize(MAX_FRAME + 4, 0);
    Ok(match locate_one(&padded, 0) {
        Step::Frame(frame) => Some(frame),
        Step::More | Step::End => None,
    })
}

fn read_file_run(path: &Path) -> io::Result<(Vec<u8>, Vec<Located>)> {
    match File::open(path) {
        Ok(file) => read_run(file),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok((Vec::new(), Vec::new())),
        Err(error) => Err(error),
    }
}

/// Both files as read, with the run of frames each holds.
pub(crate) struct Scan {
    bytes: [Vec<u8>; 2],
    runs: [Vec<Located>; 2],
    /// The last seq in each file (0: none).
    last_seq: [u64; 2],
}

impl Scan {
    /// Reads the journal beside `database`. `indexed`: the first ids the index lacks
    /// (disclosures, events), when known. Records are indexed in seq order, so when the newer
    /// file's first record is already indexed, every record of the older file is too, and the
    /// older file is not read at all (a reader's catch-up then reads one file, up to its end).
    pub(crate) fn read(database: &Path, indexed: Option<(i64, i64)>) -> io::Result<Scan> {
        let paths = journal_paths(database);
        let firsts = [first_frame(&paths[0])?, first_frame(&paths[1])?];
        let first_seq = |file: usize| firsts[file].map_or(0, |frame| frame.seq);
        let newer = usize::from(first_seq(1) > first_seq(0));
        let older = 1 - newer;
        let skip_older = match (indexed, firsts[newer]) {
            (Some((disclosures, events)), Some(first)) if first_seq(older) < first.seq => {
                first.id
                    < match first.chain {
                        Chain::Disclosures => disclosures,
                        Chain::Events => events,
                    }
            }
            _ => false,
        };
        let mut runs = [Vec::new(), Vec::new()];
        let mut bytes = [Vec::new(), Vec::new()];
        for file in [newer, older] {
            if file == older && skip_older {
                continue;
            }
            (bytes[file], runs[file]) = read_file_run(&paths[file])?;
        }
        let mut last_seq = [0, 1].map(|file| runs[file].last().map_or(0, |frame| frame.seq));
        if skip_older {
            // Everything in it came before the newer file's first frame.
            last_seq[older] = first_seq(newer) - 1;
        }
        Ok(Scan {
            bytes,
            runs,
            last_seq,
        })
    }

    /// The last seq in each file (0: none).
    fn last_seq(&self) -> [u64; 2] {
        self.last_seq
    }

    /// The rows from `disclosures` and `events` on (the first ids the index lacks), in the
    /// order they were written. Ends early, with a warning, at a frame whose row is not intact:
    /// nothing after it can be linked.
    pub(crate) fn rows_from(&self, disclosures: i64, events: i64) -> Vec<Row> {
        let mut wanted: Vec<(usize, Located)> = (0..2)
            .flat_map(|file| self.runs[file].iter().map(move |frame| (file, *frame)))
            .filter(|(_, frame)| {
                frame.id
                    >= match frame.chain {
                        Chain::Disclosures => disclosures,
                        Chain::Events => events,
                    }
            })
            .collect();
        wanted.sort_by_key(|(_, frame)| frame.seq);
        wanted.dedup_by_key(|(_, frame)| frame.seq);
        let mut rows = Vec::with_capacity(wanted.len());
        for (file, frame) in wanted {
            match decode(&self.bytes[file][frame.start..frame.end]) {
                Some(row) if row.chain() == frame.chain && row.id() == frame.id => rows.push(row),
                _ => {
                    tracing::warn!(
                        seq = frame.seq,
                        "audit journal frame is damaged; the records after it are not indexed"
                    );
                    break;
                }
            }
        }
        rows
    }
}
/// The writer's end of the journal.
pub(crate) struct Journal {
    files: [File; 2],
    active: usize,
    offset: u64,
    next_seq: u64,
    /// The last seq written to each file.
    last_seq: [u64; 2],
    /// Frames not yet on disk (all of them after a failed append).
    buffer: Vec<u8>,
}

impl Journal {
    /// Opens (creating and preallocating when missing) both files, positioned after the
    /// newest frame `scan` found.
    pub(crate) fn open(database: &Path, scan: &Scan) -> io::Result<Journal> {
        let paths = journal_paths(database);
        let files = [open_file(&paths[0])?, open_file(&paths[1])?];
        let last_seq = scan.last_seq();
        let active = usize::from(last_seq[1] > last_seq[0]);
        let offset = scan.runs[active].last().map_or(0, |frame| frame.end as u64);
        Ok(Journal {
            files,
            active,
            offset,
            next_seq: last_seq[0].max(last_seq[1]) + 1,
            last_seq,
            buffer: Vec::with_capacity(64 << 10),
        })
    }

    /// Writes `rows` as frames after any a failed append left, and flushes them to disk.
    /// After a failure the frames stay in the buffer and are written again at the same offset
    /// ahead of the next rows: a seq or record id is never reused for other content, and a
    /// record whose disclosure failed may still land (over-recording is the safe direction).
    pub(crate) fn append(&mut self, rows: &[Row]) -> io::Result<()> {
        for row in rows {
            encode(&mut self.buffer, self.next_seq, row);
            self.next_seq += 1;
        }
        let file = &self.files[self.active];
        file.write_all_at(&self.buffer, self.offset)?;
        file.sync_data()?;
        self.offset += self.buffer.len() as u64;
        self.last_seq[self.active] = self.next_seq - 1;
        self.buffer.clear();
        if self.buffer.capacity() > 1 << 20 {
            self.buffer = Vec::with_capacity(64 << 10);
        }
        Ok(())
    }

    /// Switches to the other file when this one is full and the other's records are all in
    /// SQLite (`indexed`: the last seq durably indexed).
    pub(crate) fn maybe_switch(&mut self, indexed: u64) {
        let other = 1 - self.active;
        if self.buffer.is_empty() && self.offset >= SWITCH_AT && self.last_seq[other] <= indexed {
            self.active = other;
            self.offset = 0;
        }
    }

    /// The last seq written.
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

fn open_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let length = file.metadata()?.len();
    if length < PREALLOCATE {
        let zeros = vec![0; 1 << 20];
        let mut at = length;
        while at < PREALLOCATE {
            file.write_all_at(&zeros, at)?;
            at += zeros.len() as u64;
        }
        file.sync_all()?;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
