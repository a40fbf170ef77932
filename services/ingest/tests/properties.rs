//! Property tests of the bulk zip handling on arbitrary, well-formed and damaged archives:
//! nothing panics, the entry count read from the end record is the one the zip crate finds in
//! a well-formed archive, and no read returns more than its `max` bytes.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use easel_ingest::archive::{Archive, ArchiveError, entry_count};
use proptest::prelude::*;
use tempfile::NamedTempFile;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];

fn spool(bytes: &[u8]) -> NamedTempFile {
    let mut file = NamedTempFile::new().expect("a temp file");
    file.write_all(bytes).expect("spooling");
    file
}

/// A zip of `entries` (name → content), each stored or deflated, with a comment or not.
fn build(entries: &BTreeMap<String, (Vec<u8>, bool)>, comment: &str) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, (content, deflate)) in entries {
        let method = if *deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        zip.start_file(name.as_str(), SimpleFileOptions::default().compression_method(method)).expect("an entry");
        zip.write_all(content).expect("writing an entry");
    }
    zip.set_comment(comment).expect("a comment");
    zip.finish().expect("closing the zip").into_inner()
}

/// Entry contents that deflate well (runs) or not (noise), up to a few kilobytes.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (any::<u8>(), 0usize..8192).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn entries() -> impl Strategy<Value = BTreeMap<String, (Vec<u8>, bool)>> {
    let name = prop_oneof![
        "[a-z0-9_]{1,12}\\.(png|jpg|csv|jsonl)",
        Just("manifest.csv".to_string()),
        Just("manifest.jsonl".to_string()),
        "[a-z]{1,4}/[a-z]{1,8}\\.png",
        "\\PC{1,16}".prop_filter("a file, not a folder", |n| !n.ends_with('/')),
    ];
    prop::collection::btree_map(name, (content(), any::<bool>()), 0..12)
}

/// Opens `bytes` and exercises every read, checking the bounds; never panics.
fn exercise(bytes: &[u8], max_entries: u64, max: usize) -> Result<(), TestCaseError> {
    let counted = entry_count(&mut Cursor::new(bytes));
    match Archive::open(spool(bytes), max_entries) {
        Ok(mut archive) => {
            let count = counted.map_err(|e| TestCaseError::fail(format!("opened, but not counted: {e}")))?;
            prop_assert!(count <= max_entries);
            let names = archive.file_names().unwrap_or_default();
            for name in names.iter().take(16) {
                prop_assert!(archive.contains(name));
                if let Ok(Some(read)) = archive.read(name, max) {
                    prop_assert!(read.len() <= max, "{name}: read {} bytes, over {max}", read.len());
                }
            }
            if let Ok((_, Some(manifest))) = archive.manifest(max) {
                prop_assert!(manifest.len() <= max);
            }
            let _ = archive.read("no such entry", max);
        }
        Err(ArchiveError::TooManyEntries { count, max }) => {
            prop_assert!(count > max);
            prop_assert_eq!(counted.ok(), Some(count));
        }
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), max in 0usize..4096) {
        exercise(&bytes, 100, max)?;
    }

    /// Noise with an end record somewhere in it, claiming any count, any offset and zip64.
    #[test]
    fn forged_end_records_never_panic(
        prefix in prop::collection::vec(any::<u8>(), 0..512),
        record in prop::collection::vec(any::<u8>(), 18..18 + 64),
        zip64 in any::<bool>(),
        locator_offset in any::<u64>(),
    ) {
        let mut bytes = prefix;
        if zip64 {
            bytes.extend([0x50, 0x4b, 0x06, 0x07, 0, 0, 0, 0]);
            bytes.extend(locator_offset.to_le_bytes());
            bytes.extend([1, 0, 0, 0]);
        }
        bytes.extend(EOCD);
        bytes.extend(&record);
        if zip64 {
            let at = bytes.len() - record.len();
            bytes[at + 6..at + 8].copy_from_slice(&0xFFFFu16.to_le_bytes());
        }
        let _ = entry_count(&mut Cursor::new(&bytes));
        exercise(&bytes, 100, 1024)?;
    }

    #[test]
    fn well_formed_archives_are_counted_and_read_within_bounds(
        entries in entries(),
        comment in "[ -~]{0,64}",
        max in 0usize..10_000,
    ) {
        let bytes = build(&entries, &comment);
        let count = entry_count(&mut Cursor::new(&bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let zip = ZipArchive::new(Cursor::new(&bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(count, zip.len() as u64);
        prop_assert_eq!(count, entries.len() as u64);

        let mut archive = Archive::open(spool(&bytes), entries.len() as u64).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut names = archive.file_names().map_err(|e| TestCaseError::fail(e.to_string()))?;
        names.sort();
        prop_assert_eq!(names, entries.keys().filter(|n| !n.ends_with('/')).cloned().collect::<Vec<_>>());
        for (name, (content, _)) in &entries {
            let read = archive.read(name, max).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if content.len() <= max {
                prop_assert_eq!(read.as_deref(), Some(content.as_slice()), "{}", name);
            } else {
                prop_assert_eq!(read, None, "{} is {} bytes, over {}", name, content.len(), max);
            }
        }
        if entries.len() as u64 > 0 {
            let refused = Archive::open(spool(&bytes), entries.len() as u64 - 1);
            let is_too_many = matches!(refused, Err(ArchiveError::TooManyEntries { .. }));
            prop_assert!(is_too_many);
        }
    }

    #[test]
    fn damaged_archives_never_panic_nor_read_past_max(
        entries in entries(),
        damage in prop_oneof![
            any::<prop::sample::Index>().prop_map(Damage::Truncate),
            prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..16).prop_map(Damage::Flip),
            (any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(count, size, offset)| Damage::EndRecord { count, size, offset }),
            (any::<prop::sample::Index>(), any::<u32>()).prop_map(|(at, size)| Damage::DeclaredSize { at, size }),
        ],
        max in 0usize..4096,
    ) {
        let mut bytes = build(&entries, "");
        damage.apply(&mut bytes);
        exercise(&bytes, 64, max)?;
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(prop::sample::Index),
    Flip(Vec<(prop::sample::Index, u8)>),
    /// The end record's entry counts, central directory size and offset rewritten.
    EndRecord { count: u16, size: u32, offset: u32 },
    /// A central directory header's uncompressed size rewritten (a zip's sizes may lie).
    DeclaredSize { at: prop::sample::Index, size: u32 },
}

impl Damage {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Damage::Flip(flips) => {
                for (at, mask) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= mask;
                }
            }
            Damage::EndRecord { count, size, offset } => {
                if let Some(e) = bytes.windows(4).rposition(|w| w == EOCD) {
                    bytes[e + 8..e + 10].copy_from_slice(&count.to_le_bytes());
                    bytes[e + 10..e + 12].copy_from_slice(&count.to_le_bytes());
                    bytes[e + 12..e + 16].copy_from_slice(&size.to_le_bytes());
                    bytes[e + 16..e + 20].copy_from_slice(&offset.to_le_bytes());
                }
            }
            Damage::DeclaredSize { at, size } => {
                let headers: Vec<usize> =
                    bytes.windows(4).enumerate().filter(|(_, w)| *w == [0x50, 0x4b, 0x01, 0x02]).map(|(i, _)| i).collect();
                if !headers.is_empty() {
                    let h = headers[at.index(headers.len())];
                    if h + 28 <= bytes.len() {
                        bytes[h + 24..h + 28].copy_from_slice(&size.to_le_bytes());
                    }
                }
            }
        }
    }
}
