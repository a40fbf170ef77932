//! A bulk zip, safely: spooled to a temporary file (never held in memory), its entry count read
//! from the end-of-central-directory record before the central directory itself is parsed, and
//! only the entries the manifest names decompressed, one at a time, each read bounded.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use tempfile::NamedTempFile;
use zip::ZipArchive;

use crate::spool::Spooled;

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a zip archive: {0}")]
    NotZip(String),
    #[error("the archive holds {count} entries, over the limit of {max}")]
    TooManyEntries { count: u64, max: u64 },
    #[error("{name}: {message}")]
    Entry { name: String, message: String },
    #[error("the archive has no manifest.csv or manifest.jsonl at its root")]
    NoManifest,
    #[error("reading the spooled archive: {0}")]
    Io(#[from] std::io::Error),
}

/// An opened archive on disk (the file goes when this is dropped).
pub struct Archive {
    zip: ZipArchive<File>,
    _spool: NamedTempFile,
}

impl Archive {
    /// Opens the spooled archive, refusing it from its end record alone when it claims more
    /// than `max_entries` entries.
    pub fn open(spool: NamedTempFile, max_entries: u64) -> Result<Self, ArchiveError> {
        let mut file = spool.reopen()?;
        let count = entry_count(&mut file)?;
        if count > max_entries {
            return Err(ArchiveError::TooManyEntries { count, max: max_entries });
        }
        file.seek(SeekFrom::Start(0))?;
        let zip = ZipArchive::new(file).map_err(|e| ArchiveError::NotZip(e.to_string()))?;
        Ok(Self { zip, _spool: spool })
    }

    /// The names of the entries that are files (not folders), from the central directory.
    pub fn file_names(&self) -> Result<Vec<String>, ArchiveError> {
        let mut names = Vec::with_capacity(self.zip.len());
        for name in self.zip.file_names() {
            let name = name.map_err(|e| ArchiveError::NotZip(format!("unreadable file name: {e}")))?;
            if !name.ends_with('/') {
                names.push(name.into_owned());
            }
        }
        Ok(names)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// An entry's bytes; `None` if they are over `max` (a zip's declared sizes may lie, so the
    /// read itself is bounded too).
    pub fn read(&mut self, name: &str, max: usize) -> Result<Option<Vec<u8>>, ArchiveError> {
        let entry_error = |message: String| ArchiveError::Entry { name: name.to_string(), message };
        let entry = self.zip.by_name(name).map_err(|e| entry_error(e.to_string()))?;
        if entry.size() > max as u64 {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.take(max as u64 + 1).read_to_end(&mut bytes).map_err(|e| entry_error(e.to_string()))?;
        Ok((bytes.len() <= max).then_some(bytes))
    }

    /// An entry decompressed to a temporary file; `None` if it is over `max`.
    pub fn extract(&mut self, name: &str, max: usize) -> Result<Option<Spooled>, ArchiveError> {
        let entry_error = |message: String| ArchiveError::Entry { name: name.to_string(), message };
        let entry = self.zip.by_name(name).map_err(|e| entry_error(e.to_string()))?;
        if entry.size() > max as u64 {
            return Ok(None);
        }
        Spooled::from_reader_blocking(entry, max).map_err(|e| entry_error(e.to_string()))
    }

    /// The manifest at the root: its name and bytes (at most `max`; `Ok(None)` if over).
    pub fn manifest(&mut self, max: usize) -> Result<(&'static str, Option<Vec<u8>>), ArchiveError> {
        let name = ["manifest.csv", "manifest.jsonl"].into_iter().find(|n| self.contains(n)).ok_or(ArchiveError::NoManifest)?;
        Ok((name, self.read(name, max)?))
    }
}

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
/// The end record is 22 bytes, followed by a comment of at most 65,535.
const EOCD_MAX_DISTANCE: u64 = 22 + 65_535;

/// The number of entries the archive's end-of-central-directory record (or its zip64 twin)
/// declares: what a zip reader would go on to parse.
pub fn entry_count(file: &mut (impl Read + Seek)) -> Result<u64, ArchiveError> {
    let not_zip = |m: &str| ArchiveError::NotZip(m.to_string());
    let len = file.seek(SeekFrom::End(0))?;
    if len < 22 {
        return Err(not_zip("too short for a zip end record"));
    }
    let tail_start = len.saturating_sub(EOCD_MAX_DISTANCE);
    file.seek(SeekFrom::Start(tail_start))?;
    let mut tail = Vec::with_capacity((len - tail_start) as usize);
    file.read_to_end(&mut tail)?;
    let eocd = (0..=tail.len() - 22)
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD_SIGNATURE)
        .ok_or_else(|| not_zip("no end-of-central-directory record"))?;
    let entries = u64::from(u16::from_le_bytes([tail[eocd + 10], tail[eocd + 11]]));
    if entries != 0xFFFF {
        return Ok(entries);
    }
    // Zip64: a 20-byte locator just before the end record points at the zip64 end record.
    let locator = eocd.checked_sub(20).filter(|&i| u32_at(&tail, i) == ZIP64_LOCATOR_SIGNATURE);
    let Some(locator) = locator else { return Ok(entries) };
    let offset = u64::from_le_bytes(tail[locator + 8..locator + 16].try_into().expect("8 bytes"));
    let mut record = [0u8; 56];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut record).map_err(|_| not_zip("the zip64 end record is cut off"))?;
    if u32_at(&record, 0) != ZIP64_EOCD_SIGNATURE {
        return Err(not_zip("the zip64 locator points at no zip64 end record"));
    }
    Ok(u64::from_le_bytes(record[32..40].try_into().expect("8 bytes")))
}

fn u32_at(bytes: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]])
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn zip_with(entries: usize) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for i in 0..entries {
            zip.start_file(format!("f{i}.txt"), stored).unwrap();
            zip.write_all(b"x").unwrap();
        }
        let _ = zip.set_comment("a comment after the end record");
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn counts_entries_from_the_end_record() {
        for n in [0, 1, 7, 300] {
            assert_eq!(entry_count(&mut Cursor::new(zip_with(n))).unwrap(), n as u64);
        }
        assert!(entry_count(&mut Cursor::new(b"not a zip at all, just text".to_vec())).is_err());
        assert!(entry_count(&mut Cursor::new(Vec::new())).is_err());
    }

    #[test]
    fn refuses_an_archive_that_claims_too_many_entries_before_parsing_it() {
        let mut bytes = zip_with(3);
        // Patch the end record's two entry counts to 60,000 (the central directory still holds
        // 3): a reader that trusted it would try to parse 60,000 records.
        let eocd = bytes.windows(4).rposition(|w| w == EOCD_SIGNATURE.to_le_bytes()).unwrap();
        bytes[eocd + 8..eocd + 10].copy_from_slice(&60_000u16.to_le_bytes());
        bytes[eocd + 10..eocd + 12].copy_from_slice(&60_000u16.to_le_bytes());
        let mut spool = NamedTempFile::new().unwrap();
        spool.write_all(&bytes).unwrap();
        let err = Archive::open(spool, 2001).err().expect("refused");
        assert!(matches!(err, ArchiveError::TooManyEntries { count: 60_000, max: 2001 }), "{err}");
    }
}
