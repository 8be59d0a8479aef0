//! Placeholder until the image download lands (branch `img`).
#![allow(missing_docs, unreachable_pub)]
use std::path::{Path, PathBuf};

use crate::provider::HttpConfig;

#[derive(Debug, Clone, Copy)]
pub enum Os {
    Ubuntu,
    Debian,
}
#[derive(Debug, Clone, Copy)]
pub struct Arch;
impl Arch {
    pub fn host() -> Self {
        Arch
    }
}
#[derive(Debug, Clone)]
pub struct CloudImage;
#[derive(Debug, Clone)]
pub struct DownloadProgress {
    pub done: u64,
    pub total: Option<u64>,
}
#[derive(Debug, thiserror::Error)]
#[error("image downloads are not in this build yet")]
pub struct ImageError;
impl crate::Hint for ImageError {
    fn hint(&self) -> Option<String> {
        None
    }
}
pub fn official(_os: Os, _v: &str, _a: Arch) -> Result<CloudImage, ImageError> {
    Err(ImageError)
}
pub async fn ensure(
    _i: &CloudImage,
    _d: &Path,
    _h: &HttpConfig,
    _p: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<PathBuf, ImageError> {
    Err(ImageError)
}
