//! The journal's framing: what a crash or a recycled file can leave, read back.

use proptest::prelude::*;

use super::*;
use crate::record::{EventKind, GENESIS_HASH};

fn disclosure(id: i64, prev: &str) -> Row {
    let disclosure = crate::record::Disclosure {
        request_id: format!("r{id}"),
        partner: "agecheck".into(),
        purpose: "age_verification".into(),
        msisdn: headwall_identity::Msisdn::parse("447700900123").unwrap(),
        kinds: vec!["msisdn".into()],
        headers: vec!["x-msisdn".into()],
        host: "verify.agecheck.test".into(),
        port: 80,
        upstream_ip: "127.0.0.2".parse().unwrap(),
        client_ip: "127.0.0.5".parse().unwrap(),
        policy_hash: "p".into(),
    };
    Row::Disclosure(DisclosureRow::new(id, 1_000 + id, &disclosure, prev))
}

fn event(id: i64, prev: &str) -> Row {
    Row::Event(EventRow::new(
        id,
        2_000 + id,
        EventKind::PolicyChange,
        r#"{"hash":"p"}"#.into(),
        prev,
    ))
}

/// `count` rows alternating between the chains, each linked to the one before in its chain.
fn rows(first_id: i64, count: usize) -> Vec<Row> {
    let (mut disclosures, mut events) = (GENESIS_HASH.to_owned(), GENESIS_HASH.to_owned());
    (0..count)
        .map(|index| {
            let id = first_id + (index / 2) as i64;
            let row = if index % 2 == 0 {
                disclosure(id, &disclosures)
            } else {
                event(id, &events)
            };
            match &row {
                Row::Disclosure(row) => disclosures.clone_from(&row.hash),
                Row::Event(row) => events.clone_from(&row.hash),
            }
            row
        })
        .collect()
}

fn frames(first_seq: u64, rows: &[Row]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (seq, row) in (first_seq..).zip(rows) {
        encode(&mut bytes, seq, row);
    }
    bytes
}

fn locate(bytes: &[u8]) -> Vec<Located> {
    read_run(bytes).unwrap().1
}

fn seqs(bytes: &[u8]) -> Vec<u64> {
    locate(bytes).iter().map(|frame| frame.seq).collect()
}

#[test]
fn rows_come_back_as_written() {
    let written = rows(1, 6);
    let bytes = frames(1, &written);
    let found = locate(&bytes);
    assert_eq!(found.len(), 6);
    for (frame, row) in found.iter().zip(&written) {
        let read = decode(&bytes[frame.start..frame.end]).expect("intact");
        assert_eq!(read.hash(), row.hash());
        assert_eq!((read.chain(), read.id()), (row.chain(), row.id()));
    }
    match decode(&bytes[found[0].start..found[0].end]) {
        Some(Row::Disclosure(row)) => assert_eq!(row.msisdn, "447700900123"),
        _ => panic!("the first frame holds a disclosure"),
    }
}

#[test]
fn a_zeroed_file_holds_nothing() {
    assert!(locate(&[0; 4096]).is_empty());
    assert!(locate(&[]).is_empty());
}

#[test]
fn a_torn_last_frame_is_not_a_record() {
    let mut bytes = frames(1, &rows(1, 4));
    let whole = bytes.len();
    // Killed in the middle of the last frame's write: its tail is still zeros.
    let last = locate(&bytes)[3];
    bytes[last.start + 30..].fill(0);
    bytes.resize(whole + 512, 0);
    assert_eq!(seqs(&bytes), [1, 2, 3]);
}

#[test]
fn what_an_older_cycle_left_ends_the_newest_run() {
    // The file held seqs 1..=40; it was switched back to and overwritten with 61..=63.
    let mut bytes = frames(1, &rows(1, 40));
    let newer = frames(61, &rows(21, 3));
    bytes[..newer.len()].copy_from_slice(&newer);
    assert_eq!(seqs(&bytes), [61, 62, 63]);
    // The same, where the new frames end exactly on an old frame's start.
    let mut bytes = frames(1, &rows(1, 40));
    let newer = frames(61, &rows(1, 3));
    assert_eq!(
        newer.len(),
        locate(&bytes)[3].start,
        "an old frame starts where they end"
    );
    bytes[..newer.len()].copy_from_slice(&newer);
    assert_eq!(seqs(&bytes), [61, 62, 63]);
}

#[test]
fn an_altered_row_is_refused() {
    let mut bytes = frames(1, &rows(1, 2));
    let first = locate(&bytes)[0];
    let at = bytes[first.start..first.end]
        .windows(8)
        .position(|window| window == b"agecheck")
        .unwrap();
    bytes[first.start + at] = b'A';
    assert!(decode(&bytes[first.start..first.end]).is_none());
}

fn scan_of(files: [Vec<u8>; 2]) -> Scan {
    let runs = [locate(&files[0]), locate(&files[1])];
    let last_seq = [0, 1].map(|file| runs[file].last().map_or(0, |frame| frame.seq));
    Scan {
        bytes: files,
        runs,
        last_seq,
    }
}

#[test]
fn two_files_are_read_in_seq_order_from_the_first_missing_record() {
    let all = rows(1, 10);
    // File 1 holds seqs 1..=6, file 0 (switched to) 7..=10.
    let scan = scan_of([frames(7, &all[6..]), frames(1, &all[..6])]);
    assert_eq!(scan.last_seq(), [10, 6]);
    let ids: Vec<(Chain, i64)> = scan
        .rows_from(3, 4)
        .iter()
        .map(|row| (row.chain(), row.id()))
        .collect();
    assert_eq!(
        ids,
        [
            (Chain::Disclosures, 3),
            (Chain::Disclosures, 4),
            (Chain::Events, 4),
            (Chain::Disclosures, 5),
            (Chain::Events, 5),
        ]
    );
}

proptest! {
    /// Whatever a file holds, reading it never panics, and every frame it accepts is one that
    /// was written: a mutation inside a frame either leaves the frame out or ends the run.
    #[test]
    fn any_bytes_are_read_without_panic_and_accept_only_written_frames(
        count in 0usize..12,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let written = rows(1, count);
        let mut bytes = frames(1, &written);
        bytes.extend(tail);
        for (at, value) in flips {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= value;
            }
        }
        let hashes: Vec<&str> = written.iter().map(Row::hash).collect();
        for frame in locate(&bytes) {
            if let Some(row) = decode(&bytes[frame.start..frame.end]) {
                prop_assert!(hashes.contains(&row.hash()));
            }
        }
        let scan = scan_of([bytes, Vec::new()]);
        for row in scan.rows_from(1, 1) {
            prop_assert!(hashes.contains(&row.hash()));
        }
    }
}

#[test]
fn the_older_file_is_read_only_when_the_index_lacks_some_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let all = rows(1, 10);
    let [newer, older] = journal_paths(&database);
    // The older file holds seqs 1..=6; the writer switched and wrote 7..=10 into the newer.
    let mut bytes = frames(7, &all[6..]);
    bytes.resize(64 << 10, 0);
    std::fs::write(&newer, &bytes).unwrap();
    std::fs::write(&older, frames(1, &all[..6])).unwrap();
    let ids = |scan: &Scan, disclosures, events| -> Vec<(Chain, i64)> {
        scan.rows_from(disclosures, events)
            .iter()
            .map(|row| (row.chain(), row.id()))
            .collect()
    };

    // The index lacks disclosure 3 on: the older file is read for it.
    let scan = Scan::read(&database, Some((3, 4))).unwrap();
    assert_eq!(scan.runs[1].len(), 6);
    assert_eq!(ids(&scan, 3, 4).len(), 5);
    // The newer file's first record (disclosure 4) is indexed: everything before it is too.
    let scan = Scan::read(&database, Some((5, 5))).unwrap();
    assert!(scan.runs[1].is_empty(), "the older file was read");
    assert_eq!(scan.last_seq(), [10, 6]);
    assert_eq!(
        ids(&scan, 5, 5),
        [(Chain::Disclosures, 5), (Chain::Events, 5)]
    );
    // The writer's position: after the newest frame of the newer file.
    assert_eq!(scan.runs[0].last().unwrap().end, frames(7, &all[6..]).len());
    // Without the index's heads both are read.
    assert_eq!(Scan::read(&database, None).unwrap().runs[1].len(), 6);
}
