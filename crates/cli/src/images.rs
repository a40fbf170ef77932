//! Where `easel train` and `easel eval` read a manifest's images: local files, and `s3://`
//! objects in the project's bucket through the services' S3 store (configured like the
//! services: `config/` + `APP_S3__*` variables; see docs/PIPELINE.md).

use std::sync::OnceLock;

use easel_core::configuration::{Service, Settings};
use easel_core::storage::ImageStore;
use easel_train::data::{ImageRef, ImageSource, LocalFiles};

/// Local files, and S3 objects once a manifest names one (the store is opened lazily).
#[derive(Default)]
pub struct ManifestImages {
    s3: OnceLock<Result<(tokio::runtime::Runtime, ImageStore), String>>,
}

impl ManifestImages {
    fn store(&self) -> Result<&(tokio::runtime::Runtime, ImageStore), String> {
        self.s3
            .get_or_init(|| {
                let settings = Settings::load(Service::Worker).map_err(|e| {
                    format!("s3:// images need the S3 settings (config/ and APP_S3__*): {e}")
                })?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the S3 client: {e}"))?;
                Ok((runtime, ImageStore::new(&settings.s3)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let (runtime, store) = self.store()?;
        if bucket != store.bucket() {
            return Err(format!(
                "s3://{bucket}/{key}: only the project's bucket {} is readable",
                store.bucket()
            ));
        }
        runtime
            .block_on(store.get(key))
            .map(|bytes| bytes.to_vec())
            .map_err(|e| format!("s3://{bucket}/{key}: {e}"))
    }
}

impl ImageSource for ManifestImages {
    fn check(&self, image: &ImageRef) -> Result<(), String> {
        match image {
            ImageRef::Local(_) => LocalFiles.check(image),
            ImageRef::S3 { bucket, key } => {
                let bytes = self.object(bucket, key)?;
                easel_imaging::sniff(&bytes)
                    .map(|_| ())
                    .ok_or_else(|| format!("s3://{bucket}/{key}: not a recognised image format"))
            }
        }
    }

    fn read(&self, image: &ImageRef) -> Result<Vec<u8>, String> {
        match image {
            ImageRef::Local(_) => LocalFiles.read(image),
            ImageRef::S3 { bucket, key } => self.object(bucket, key),
        }
    }
}
