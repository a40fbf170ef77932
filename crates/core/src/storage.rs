//! The images bucket: one wrapper over aws-sdk-s3 for every service (path-style, endpoint
//! configurable, so SeaweedFS or MinIO serve as well as AWS).

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation, retry::RetryConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::configuration::S3Settings;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object is not there: retrying will not help.
    #[error("object {key} is not in bucket {bucket}")]
    NotFound { bucket: String, key: String },
    /// The store could not be reached or answered with an error; worth retrying.
    #[error("S3 {operation} failed: {message}")]
    Unavailable { operation: &'static str, message: String },
    /// The object is larger than the reader accepts (nothing past the limit was read).
    #[error("object {key} is over the limit of {limit} bytes")]
    TooLarge { key: String, limit: usize },
}

impl StorageError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Unavailable { .. })
    }

    fn unavailable<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StorageError::Unavailable { operation, message: DisplayErrorContext(&error).to_string() }
    }
}

/// Where every image lives in the bucket.
pub const IMAGE_PREFIX: &str = "images/sha256/";

/// The content-addressed key of an image: the same bytes always land on the same object, so a
/// retried or repeated upload stores nothing new.
pub fn image_key(sha256_hex: &str) -> String {
    format!("{IMAGE_PREFIX}{}/{sha256_hex}", &sha256_hex[..2.min(sha256_hex.len())])
}

/// The sha256 an image key names (the inverse of [`image_key`]).
pub fn sha256_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(IMAGE_PREFIX).and_then(|rest| rest.rsplit_once('/')).map(|(_, sha)| sha)
}

/// Where the copies made from each image live: `derived/sha256/<ab>/<sha256>/<name>`.
pub const DERIVED_PREFIX: &str = "derived/sha256/";

/// A copy the pipeline makes once from each stored image, for people to look at: re-encoded from
/// the pixels (so none of the original file's metadata, EXIF included), keyed by the original's
/// sha256 like the image itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    /// For lists and leaderboards: JPEG, at most 320 pixels on the longer side.
    Thumbnail,
    /// For an entry's page and a juror's scoring page: JPEG, at most 1600 pixels.
    Preview,
}

impl Derived {
    pub const ALL: [Derived; 2] = [Derived::Thumbnail, Derived::Preview];

    /// The longer side, at most.
    pub fn max_side(self) -> u32 {
        match self {
            Derived::Thumbnail => 320,
            Derived::Preview => 1600,
        }
    }

    /// JPEG quality.
    pub fn quality(self) -> u8 {
        match self {
            Derived::Thumbnail => 82,
            Derived::Preview => 88,
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Derived::Thumbnail => "thumbnail.jpg",
            Derived::Preview => "preview.jpg",
        }
    }

    /// The key of this copy of the image whose sha256 is `sha256_hex`.
    pub fn key(self, sha256_hex: &str) -> String {
        format!("{DERIVED_PREFIX}{}/{sha256_hex}/{}", &sha256_hex[..2.min(sha256_hex.len())], self.file_name())
    }

    /// The original's image key for a derived key (the inverse of [`Derived::key`]).
    pub fn original_of(key: &str) -> Option<String> {
        let rest = key.strip_prefix(DERIVED_PREFIX)?;
        let mut parts = rest.split('/');
        let (_, sha, name) = (parts.next()?, parts.next()?, parts.next()?);
        (parts.next().is_none() && Derived::ALL.iter().any(|d| d.file_name() == name)).then(|| image_key(sha))
    }
}

/// The lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Clone, Debug)]
pub struct ImageStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl ImageStore {
    pub fn new(settings: &S3Settings) -> Self {
        let credentials = Credentials::new(
            settings.access_key_id.expose_secret(),
            settings.secret_access_key.expose_secret(),
            None,
            None,
            "easel-settings",
        );
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.force_path_style)
            // S3-compatible stores do not all understand the SDK's default trailing checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(3)))
                    .operation_attempt_timeout(timeout)
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self { client: aws_sdk_s3::Client::from_conf(config.build()), bucket: settings.bucket.clone() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StorageError::unavailable("PutObject", e))?;
        Ok(())
    }

    /// Reads the object under `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        self.get_limited(key, usize::MAX).await
    }

    /// As [`ImageStore::get`], refusing an object over `limit` bytes (by its length header, and
    /// while reading, should the header lie) without holding more than `limit` in memory.
    pub async fn get_limited(&self, key: &str, limit: usize) -> Result<Bytes, StorageError> {
        let too_large = || StorageError::TooLarge { key: key.to_string(), limit };
        let object = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                StorageError::NotFound { bucket: self.bucket.clone(), key: key.to_string() }
            } else {
                StorageError::unavailable("GetObject", e)
            }
        })?;
        if object.content_length().is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit)) {
            return Err(too_large());
        }
        let mut body = object.body;
        let mut buffer = bytes::BytesMut::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| StorageError::Unavailable {
            operation: "GetObject",
            message: format!("reading the body: {e}"),
        })? {
            if buffer.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(buffer.freeze())
    }

    /// Objects under `prefix` last written before `older_than`, at most `limit` of them
    /// (listing continues from `after`, a key; `None` starts at the beginning). Returns them and
    /// the key to continue from, if the listing has more.
    pub async fn list_older(
        &self,
        prefix: &str,
        older_than: std::time::SystemTime,
        after: Option<String>,
        limit: i32,
    ) -> Result<(Vec<String>, Option<String>), StorageError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(after)
            .max_keys(limit)
            .send()
            .await
            .map_err(|e| StorageError::unavailable("ListObjectsV2", e))?;
        let objects = page.contents();
        let next = if page.is_truncated().unwrap_or(false) { objects.last().and_then(|o| o.key().map(str::to_string)) } else { None };
        let old = objects
            .iter()
            .filter(|o| o.last_modified().and_then(|t| std::time::SystemTime::try_from(*t).ok()).is_some_and(|t| t < older_than))
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        Ok((old, next))
    }

    /// When the object was last written; `None` if it is not there.
    pub async fn last_modified(&self, key: &str) -> Result<Option<std::time::SystemTime>, StorageError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(head.last_modified().and_then(|t| std::time::SystemTime::try_from(*t).ok())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(StorageError::unavailable("HeadObject", e)),
        }
    }

    /// Deletes an object (deleting one that is not there succeeds).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::unavailable("DeleteObject", e))?;
        Ok(())
    }

    /// Whether the bucket is reachable (readiness).
    pub async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| StorageError::unavailable("HeadBucket", e))?;
        Ok(())
    }

    /// Creates the bucket unless it exists.
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self.check().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(StorageError::unavailable("CreateBucket", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_name_their_original() {
        let sha = sha256_hex(b"a painting");
        for derived in Derived::ALL {
            let key = derived.key(&sha);
            assert!(key.starts_with(DERIVED_PREFIX), "{key}");
            assert_eq!(Derived::original_of(&key), Some(image_key(&sha)));
        }
        assert_ne!(Derived::Thumbnail.key(&sha), Derived::Preview.key(&sha));
        for bad in [image_key(&sha), format!("{DERIVED_PREFIX}ab/{sha}/other.jpg"), format!("{DERIVED_PREFIX}ab/{sha}/thumbnail.jpg/x")] {
            assert_eq!(Derived::original_of(&bad), None, "{bad}");
        }
    }
}
