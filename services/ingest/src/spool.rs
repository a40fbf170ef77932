//! Uploaded files go to temporary files as they arrive, not to memory: a request holds disk
//! (the pod's `/tmp`), and an image comes into memory only inside a decode slot
//! (`ingest.decode_concurrency`), so the pod's memory bounds hold however many uploads arrive.

use axum::extract::multipart::Field;
use bytes::Bytes;
use easel_core::http::ApiError;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use crate::routes::multipart_error;

/// A file on disk, with its length and sha256 (computed on the way in).
#[derive(Debug)]
pub struct Spooled {
    file: NamedTempFile,
    pub len: usize,
    pub sha256: String,
}

impl Spooled {
    /// Reads the whole file into memory (at most the limit it was spooled under).
    pub async fn read(&self) -> Result<Bytes, ApiError> {
        tokio::fs::read(self.file.path()).await.map(Bytes::from).map_err(ApiError::internal)
    }

    /// The file itself (for a zip reader).
    pub fn into_file(self) -> NamedTempFile {
        self.file
    }
}

/// Writes a part to a temporary file; `Ok(None)` once it is over `max` bytes (the rest is not
/// read, and the partial file is removed).
pub async fn spool(field: &mut Field<'_>, max: usize) -> Result<Option<Spooled>, ApiError> {
    let mut writer = SpoolWriter::new()?;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if writer.len + chunk.len() > max {
            return Ok(None);
        }
        writer.write(&chunk).await?;
    }
    writer.finish().await.map(Some)
}

/// A spool being written from any source of chunks.
pub struct SpoolWriter {
    file: NamedTempFile,
    out: tokio::fs::File,
    len: usize,
    hash: Sha256,
}

impl SpoolWriter {
    pub fn new() -> Result<Self, ApiError> {
        let file = NamedTempFile::new().map_err(ApiError::internal)?;
        let out = tokio::fs::File::from_std(file.reopen().map_err(ApiError::internal)?);
        Ok(Self { file, out, len: 0, hash: Sha256::new() })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.hash.update(chunk);
        self.len += chunk.len();
        self.out.write_all(chunk).await.map_err(ApiError::internal)
    }

    pub async fn finish(mut self) -> Result<Spooled, ApiError> {
        self.out.flush().await.map_err(ApiError::internal)?;
        Ok(Spooled { file: self.file, len: self.len, sha256: hex::encode(self.hash.finalize()) })
    }
}

impl Spooled {
    /// Copies at most `max` bytes of `reader` to a temporary file, in a blocking thread (a zip
    /// entry); `Ok(None)` if there are more.
    pub fn from_reader_blocking(reader: impl std::io::Read, max: usize) -> std::io::Result<Option<Self>> {
        use std::io::{Read, Write};
        let mut file = NamedTempFile::new()?;
        let (mut hash, mut len, mut buffer) = (Sha256::new(), 0usize, vec![0u8; 64 * 1024]);
        let mut limited = reader.take(max as u64 + 1);
        loop {
            let n = limited.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            len += n;
            if len > max {
                return Ok(None);
            }
            hash.update(&buffer[..n]);
            file.write_all(&buffer[..n])?;
        }
        file.flush()?;
        Ok(Some(Self { file, len, sha256: hex::encode(hash.finalize()) }))
    }
}
