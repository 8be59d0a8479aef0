//! The official cloud images a local VM boots from: which ones exist, and
//! how spuff gets one onto this machine exactly once.
//!
//! A local VM runs on a thin qcow2 overlay over a base image. By default that
//! base is the publisher's own generic cloud image (Debian's `genericcloud`,
//! Ubuntu's `server-cloudimg`) for the host's architecture, so a VM starts
//! from what the distribution ships rather than from something spuff built.
//! The images are 300–700 MB, so they are:
//!
//! - **downloaded once** into a cache shared by every local VM
//!   (`CACHE/<cache_key>/<file_name>`, see [`ensure`]), and resumed with an
//!   HTTP `Range` request when a download was cut short;
//! - **verified** against the checksum list the publisher signs and serves
//!   next to the image (`SHA512SUMS`, `SHA256SUMS`), fetched before the
//!   image; the verified hash is kept beside the file (`<file>.sha512`, in
//!   `sha512sum -c` format) and nothing unverified is ever at the final path;
//! - **guarded by a lock file**, so two `spuff up` runs at once wait for one
//!   download instead of corrupting each other's.
//!
//! [`official`] is the catalogue; [`CloudImage::base_url`] points it at a
//! mirror. Nothing here needs the network once an image is cached. Without
//! network access at all, `ci/build-image.sh` builds a base image offline.
//!
//! What is cached is never refreshed behind the user's back: `latest` moves
//! on the publisher's side, but a running VM's backing file must not. To
//! pick up a newer image, delete its cache directory.
//!
//! The publishers' lists are trusted as far as the TLS connection that
//! brought them: spuff checks that the bytes are the ones the publisher's
//! server lists, not the lists' OpenPGP signatures.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::BodyExt;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::provider::ProviderError;
use crate::provider::http::{Fetcher, HttpConfig};
use crate::util::summarize_body;

/// The largest checksum list accepted: the real ones are a few KiB, and the
/// list is read into memory.
pub const MAX_CHECKSUM_LIST: usize = 1 << 20;

/// Redirects followed before giving up (mirror networks use one or two).
pub const MAX_REDIRECTS: usize = 5;

/// How long a download may go without receiving a byte before it is cut
/// (and kept, to be resumed).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a TCP connect, proxy tunnel and TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest interval between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// How much of an error body is read for its excerpt.
const ERROR_BODY_BYTES: usize = 4096;

/// How long between two tries at another process's lock.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// The name this module gives itself in HTTP setup errors.
const WHAT: &str = "cloud image";

/// A distribution with official cloud images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Os {
    /// Debian (`genericcloud` images from cloud.debian.org).
    Debian,
    /// Ubuntu (`server-cloudimg` images from cloud-images.ubuntu.com).
    Ubuntu,
}

impl Os {
    /// The lowercase name (`debian`).
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Debian => "debian",
            Os::Ubuntu => "ubuntu",
        }
    }

    /// The versions [`official`] knows, newest last, as `number (codename)`.
    pub fn known_versions(self) -> Vec<String> {
        releases(self)
            .iter()
            .map(|(v, c)| format!("{v} ({c})"))
            .collect()
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Os {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debian" => Ok(Os::Debian),
            "ubuntu" => Ok(Os::Ubuntu),
            _ => Err(Error::UnknownOs { name: s.into() }),
        }
    }
}

/// A CPU architecture with official cloud images, named as Debian and
/// Ubuntu name them in their file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    /// x86-64 (`x86_64`).
    Amd64,
    /// 64-bit ARM (`aarch64`).
    Arm64,
}

impl Arch {
    /// The architecture this program was built for, which is the one a VM
    /// runs at full speed (KVM/HVF need the guest to match the host).
    ///
    /// # Errors
    /// [`Error::UnsupportedArch`] on any other architecture.
    pub fn host() -> Result<Self, Error> {
        std::env::consts::ARCH.parse()
    }

    /// The name in image file names (`amd64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = Error;

    /// Takes Debian's names (`amd64`, `arm64`) and Rust's (`x86_64`, `aarch64`).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "amd64" | "x86_64" | "x86-64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(Error::UnsupportedArch { arch: s.into() }),
        }
    }
}

/// The hash a publisher's checksum list uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256 (`SHA256SUMS`, Ubuntu).
    Sha256,
    /// SHA-512 (`SHA512SUMS`, Debian).
    Sha512,
}

impl Algorithm {
    /// The length of a hash in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// The lowercase name, also the extension of the verified-hash file
    /// written beside a cached image (`sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512 => "SHA-512",
        })
    }
}

/// One downloadable cloud image and the list that vouches for it.
///
/// The URLs are [`base_url`](Self::base_url) joined with a path, so pointing
/// the whole image at a mirror of the publisher's tree is one field (or
/// [`with_base_url`](Self::with_base_url)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudImage {
    /// The root of the publisher's tree, or of a mirror of it
    /// (`https://cloud.debian.org/images/cloud/`). Must be `https://`.
    pub base_url: String,
    /// The image's path under [`base_url`](Self::base_url)
    /// (`bookworm/latest/debian-12-genericcloud-amd64.qcow2`).
    pub path: String,
    /// The checksum list's path under [`base_url`](Self::base_url)
    /// (`bookworm/latest/SHA512SUMS`).
    pub checksums_path: String,
    /// The hash the list uses.
    pub algorithm: Algorithm,
    /// The file name the list gives the image, and the cached file's name.
    pub file_name: String,
    /// The cache subdirectory (`debian-12-amd64`): one per OS, version and
    /// architecture, so each stays put while another is fetched.
    pub cache_key: String,
}

impl CloudImage {
    /// The same image fetched from a mirror of the publisher's tree (or a
    /// local test server): `base_url` replaces [`CloudImage::base_url`].
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The image's URL.
    pub fn url(&self) -> String {
        join(&self.base_url, &self.path)
    }

    /// The checksum list's URL.
    pub fn checksums_url(&self) -> String {
        join(&self.base_url, &self.checksums_path)
    }
}

fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// The root of Debian's cloud image tree.
pub const DEBIAN_BASE_URL: &str = "https://cloud.debian.org/images/cloud/";

/// The root of Ubuntu's released cloud images.
pub const UBUNTU_BASE_URL: &str = "https://cloud-images.ubuntu.com/releases/";

/// The versions with images, oldest first, and their codenames.
fn releases(os: Os) -> &'static [(&'static str, &'static str)] {
    match os {
        Os::Debian => &[("12", "bookworm"), ("13", "trixie")],
        Os::Ubuntu => &[("22.04", "jammy"), ("24.04", "noble")],
    }
}

/// The official generic cloud image of `os` `version` for `arch`.
///
/// `version` is a number (`12`, `24.04`) or a codename (`bookworm`,
/// `noble`). Debian's images come from `…/<codename>/latest/`, so a new
/// cache fills with the current point release; Ubuntu's from
/// `…/releases/<version>/release/`, the latest build of that LTS.
///
/// ```
/// use spuff::provider::local::image::{Algorithm, Arch, Os, official};
///
/// let img = official(Os::Debian, "12", Arch::Amd64)?;
/// assert_eq!(
///     img.url(),
///     "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
/// );
/// assert_eq!(img.checksums_url(), "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS");
/// assert_eq!((img.algorithm, img.cache_key.as_str()), (Algorithm::Sha512, "debian-12-amd64"));
/// # Ok::<(), spuff::provider::local::image::Error>(())
/// ```
///
/// # Errors
/// [`Error::UnknownVersion`], listing the versions there are.
pub fn official(os: Os, version: &str, arch: Arch) -> Result<CloudImage, Error> {
    let wanted = version.trim().to_ascii_lowercase();
    let Some(&(number, codename)) = releases(os)
        .iter()
        .find(|(v, c)| *v == wanted || *c == wanted)
    else {
        return Err(Error::UnknownVersion {
            os,
            version: version.into(),
            known: os.known_versions(),
        });
    };
    let image = match os {
        Os::Debian => {
            let file_name = format!("debian-{number}-genericcloud-{arch}.qcow2");
            CloudImage {
                base_url: DEBIAN_BASE_URL.into(),
                path: format!("{codename}/latest/{file_name}"),
                checksums_path: format!("{codename}/latest/SHA512SUMS"),
                algorithm: Algorithm::Sha512,
                file_name,
                cache_key: format!("debian-{number}-{arch}"),
            }
        }
        Os::Ubuntu => {
            let file_name = format!("ubuntu-{number}-server-cloudimg-{arch}.img");
            CloudImage {
                base_url: UBUNTU_BASE_URL.into(),
                path: format!("{number}/release/{file_name}"),
                checksums_path: format!("{number}/release/SHA256SUMS"),
                algorithm: Algorithm::Sha256,
                file_name,
                cache_key: format!("ubuntu-{number}-{arch}"),
            }
        }
    };
    Ok(image)
}

/// Why a checksum list gave no usable hash for a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The list is longer than [`MAX_CHECKSUM_LIST`].
    #[error("is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The list is not UTF-8 text.
    #[error("is not text")]
    NotText,
    /// No line names the file.
    #[error("does not name the file")]
    NotListed,
    /// The line naming the file has no valid hash.
    #[error("line {line}: `{hash}` is not a {algorithm} hash ({len} hex digits)")]
    BadHash {
        /// The 1-based line number.
        line: usize,
        /// The hash as given (cut short).
        hash: String,
        /// The hash expected.
        algorithm: Algorithm,
        /// The hex digits expected.
        len: usize,
    },
    /// Two lines name the file with different hashes.
    #[error("names the file twice with different hashes")]
    Conflicting,
}

/// The hash `list` gives `file_name`, in lowercase hex.
///
/// Reads `sha256sum`/`sha512sum` output: `HASH  FILE` (text mode) and
/// `HASH *FILE` (binary mode, as Ubuntu's lists are written), and BSD-style
/// `SHA512 (FILE) = HASH` lines. Blank lines and `#` comments are skipped,
/// and so are lines about other files, whatever they hold: the list is
/// untrusted input, and only the line for `file_name` must be well-formed.
///
/// ```
/// use spuff::provider::local::image::{Algorithm, checksum_for};
///
/// let list = format!("{} *ubuntu-24.04-server-cloudimg-amd64.img\n", "ab".repeat(32));
/// let hash = checksum_for(list.as_bytes(), "ubuntu-24.04-server-cloudimg-amd64.img", Algorithm::Sha256);
/// assert_eq!(hash, Ok("ab".repeat(32)));
/// ```
///
/// # Errors
/// A [`ListError`] saying what is wrong with the list.
pub fn checksum_for(
    list: &[u8],
    file_name: &str,
    algorithm: Algorithm,
) -> Result<String, ListError> {
    if list.len() > MAX_CHECKSUM_LIST {
        return Err(ListError::TooLarge {
            limit: MAX_CHECKSUM_LIST,
        });
    }
    let text = std::str::from_utf8(list).map_err(|_| ListError::NotText)?;
    let mut found: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((hash, name)) = split_line(line) else {
            continue;
        };
        if name.strip_prefix("./").unwrap_or(name) != file_name {
            continue;
        }
        let valid =
            hash.len() == algorithm.hex_len() && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(ListError::BadHash {
                line: n + 1,
                hash: hash.chars().take(140).collect(),
                algorithm,
                len: algorithm.hex_len(),
            });
        }
        let hash = hash.to_ascii_lowercase();
        match &found {
            Some(h) if *h != hash => return Err(ListError::Conflicting),
            _ => found = Some(hash),
        }
    }
    found.ok_or(ListError::NotListed)
}

/// `(hash, file name)` of one line, in GNU or BSD form.
fn split_line(line: &str) -> Option<(&str, &str)> {
    // BSD: `SHA512 (name) = hash`.
    if let Some((left, hash)) = line.rsplit_once(" = ")
        && let Some((_, name)) = left.split_once(" (")
        && let Some(name) = name.strip_suffix(')')
    {
        return Some((hash.trim(), name));
    }
    // GNU: `hash  name` or `hash *name`.
    let (hash, rest) = line.split_once(|c: char| c.is_ascii_whitespace())?;
    let name = rest.strip_prefix(['*', ' ']).unwrap_or(rest);
    Some((hash, name))
}

/// How far a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadProgress {
    /// Bytes of the image on disk so far, those resumed from included.
    pub done: u64,
    /// The image's size, when the server said.
    pub total: Option<u64>,
    /// Bytes that were already on disk from an earlier, interrupted try
    /// (0 for a fresh download).
    pub resumed_from: u64,
}

/// Errors from the image catalogue and downloads.
///
/// Each names what it was about (URL, HTTP status, path, hashes); its
/// [`Hint`](crate::Hint) says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No image of this version is known.
    #[error("no official {os} {version} cloud image is known; known versions: {}", known.join(", "))]
    UnknownVersion {
        /// The distribution.
        os: Os,
        /// The version asked for.
        version: String,
        /// The versions there are.
        known: Vec<String>,
    },
    /// The distribution is not one with images here.
    #[error("no official cloud images for `{name}`; known: debian, ubuntu")]
    UnknownOs {
        /// The name asked for.
        name: String,
    },
    /// The architecture has no images here.
    #[error("no official cloud images for the `{arch}` architecture; known: amd64, arm64")]
    UnsupportedArch {
        /// The architecture asked for.
        arch: String,
    },
    /// A URL (the image's, the list's, or a redirect's target) is unusable.
    #[error("`{url}` is not a usable https:// URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A redirect pointed away from https://.
    #[error("{url} redirects to `{location}`, which is not https://; not following it")]
    InsecureRedirect {
        /// The URL that redirected.
        url: String,
        /// Where it pointed.
        location: String,
    },
    /// Redirects did not end.
    #[error("{url}: more than {limit} redirects")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
        /// [`MAX_REDIRECTS`].
        limit: usize,
    },
    /// The server answered with an HTTP error (or a status spuff cannot use).
    #[error("{url}: HTTP {status}: {body}")]
    Http {
        /// The URL answered (after redirects).
        url: String,
        /// The HTTP status.
        status: u16,
        /// A short, terminal-safe excerpt of the body.
        body: String,
    },
    /// A 2xx answer that is an HTML page (a captive portal, a mirror's
    /// error page), not the file.
    #[error("{url}: got an HTML page instead of the file: {body}")]
    HtmlPage {
        /// The URL answered.
        url: String,
        /// A short excerpt of the page (its title).
        body: String,
    },
    /// The server's certificate was refused.
    #[error("{url}: TLS: {message}")]
    Tls {
        /// The URL.
        url: String,
        /// What rustls reported.
        message: String,
    },
    /// The connection failed.
    #[error("{url}: {message}")]
    Network {
        /// The URL.
        url: String,
        /// The error chain.
        message: String,
    },
    /// The download ended before the whole image arrived. What arrived is
    /// kept, and the next [`ensure`] resumes from there.
    #[error(
        "{url}: download truncated at {received} of {} bytes ({reason}); it is kept in {} and the next try resumes from there",
        expected.map_or_else(|| "?".into(), |n| n.to_string()),
        part.display()
    )]
    Truncated {
        /// The image URL.
        url: String,
        /// Bytes on disk, those of earlier tries included.
        received: u64,
        /// The image's size, if the server said.
        expected: Option<u64>,
        /// What ended it (`connection closed`, `no data for 60s`).
        reason: String,
        /// The partial file.
        part: PathBuf,
    },
    /// The checksum list gave no usable hash for the image.
    #[error("checksum list {url} {problem} `{file_name}`")]
    ChecksumList {
        /// The list's URL.
        url: String,
        /// The image's file name.
        file_name: String,
        /// What is wrong.
        #[source]
        problem: ListError,
    },
    /// The image downloaded is not the one the list names. It was deleted.
    #[error(
        "{url}: {algorithm} mismatch: the checksum list says {expected}, the download is {actual}; the download was deleted"
    )]
    ChecksumMismatch {
        /// The image URL.
        url: String,
        /// The hash.
        algorithm: Algorithm,
        /// The list's hash.
        expected: String,
        /// The downloaded file's hash.
        actual: String,
    },
    /// Reading or writing the cache failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// What was being done (`writing the download`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The HTTP settings are unusable (a CA file that is not PEM, …).
    #[error(transparent)]
    HttpConfig(ProviderError),
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::UnknownVersion { os, known, .. } => {
                format!("pick one of the known {os} versions: {}", known.join(", "))
            }
            Error::UnknownOs { .. } | Error::UnsupportedArch { .. } => {
                "give a base image of your own, or build one with ci/build-image.sh".into()
            }
            Error::BadUrl { .. } | Error::InsecureRedirect { .. } | Error::TooManyRedirects { .. } => {
                "check the image mirror URL, or drop it to use the publisher's own server".into()
            }
            Error::Http { status, .. } if *status >= 500 => {
                "the image server has a problem; try again in a few minutes, or use a mirror".into()
            }
            Error::Http { status: 404, .. } => {
                "the publisher may have moved the image; update spuff, or use a mirror that has it".into()
            }
            Error::Http { .. } | Error::HtmlPage { .. } => {
                "a proxy or captive portal may be in the way: check HTTPS_PROXY/NO_PROXY, or open the URL in a browser".into()
            }
            Error::Tls { .. } => {
                "the image server's certificate is not trusted here: behind a TLS-inspecting proxy, give its CA with SPUFF_CA_FILE".into()
            }
            Error::Network { .. } => {
                "check your network connection and proxy settings (HTTPS_PROXY/NO_PROXY), then try again".into()
            }
            Error::Truncated { .. } => "run the same command again: the download resumes".into(),
            Error::ChecksumList { .. } => {
                "the mirror may be in the middle of an update; try again later, or use the publisher's own server".into()
            }
            Error::ChecksumMismatch { .. } => {
                "the image was corrupted on the way or the mirror is mid-update; run the same command again".into()
            }
            Error::Io { .. } => {
                "check that the cache directory is writable and the disk has room (images are 300-700 MB)".into()
            }
            Error::HttpConfig(e) => return crate::Hint::hint(e),
        })
    }
}

/// The verified image in `cache_dir`, downloading it first if it is not
/// there yet, and returns its path, `cache_dir/<cache_key>/<file_name>`.
///
/// A cached image is returned at once, with no network access. Otherwise
/// the checksum list is fetched first, then the image is streamed to
/// `<file_name>.part` (resumed with a `Range` request when an earlier try
/// left one), hashed on the way, and moved into place only once its hash
/// matches the list's. One process at a time downloads a given image: the
/// others wait on `<file_name>.lock` and then find it cached.
///
/// `progress` is called at the start, at most every 100 ms while bytes
/// arrive, and at the end.
///
/// # Errors
/// See [`Error`]: HTTP and network failures, a list that does not vouch for
/// the image, a hash mismatch (the download is deleted), a truncated
/// download (kept, to be resumed), or the cache not being writable.
pub async fn ensure(
    image: &CloudImage,
    cache_dir: &Path,
    http: &HttpConfig,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<PathBuf, Error> {
    let dir = cache_dir.join(&image.cache_key);
    let files = Files::new(&dir, image);
    if files.verified().await {
        return Ok(files.image);
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io_error("creating the image cache", &dir, e))?;
    let _lock = lock(&files.lock).await?;
    // Another process may have finished it while we waited.
    if files.verified().await {
        return Ok(files.image);
    }
    let fetcher = Fetcher::new(WHAT, http, CONNECT_TIMEOUT).map_err(Error::HttpConfig)?;
    let expected = fetch_checksum(&fetcher, image).await?;
    download(&fetcher, image, &files, &expected, progress).await?;
    Ok(files.image)
}

/// The files of one cached image.
struct Files {
    /// The verified image.
    image: PathBuf,
    /// The download in progress.
    part: PathBuf,
    /// The verified hash, `HASH  FILE` (written before the image is moved
    /// into place, so a present image with its stamp is a verified one).
    stamp: PathBuf,
    /// Held while downloading.
    lock: PathBuf,
    file_name: String,
    algorithm: Algorithm,
}

impl Files {
    fn new(dir: &Path, image: &CloudImage) -> Self {
        let name = &image.file_name;
        Files {
            image: dir.join(name),
            part: dir.join(format!("{name}.part")),
            stamp: dir.join(format!("{name}.{}", image.algorithm.as_str())),
            lock: dir.join(format!("{name}.lock")),
            file_name: name.clone(),
            algorithm: image.algorithm,
        }
    }

    /// Whether the image is in place with a well-formed stamp naming it.
    async fn verified(&self) -> bool {
        let is_file = tokio::fs::metadata(&self.image)
            .await
            .is_ok_and(|m| m.is_file());
        if !is_file {
            return false;
        }
        match tokio::fs::read(&self.stamp).await {
            Ok(stamp) => checksum_for(&stamp, &self.file_name, self.algorithm).is_ok(),
            Err(_) => false,
        }
    }

    /// Records `hash` as verified and moves the part into place.
    async fn commit(&self, hash: &str) -> Result<(), Error> {
        let tmp = self
            .stamp
            .with_extension(format!("{}.tmp", self.algorithm.as_str()));
        let line = format!("{hash}  {}\n", self.file_name);
        tokio::fs::write(&tmp, line)
            .await
            .map_err(|e| io_error("writing the verified hash", &tmp, e))?;
        tokio::fs::rename(&tmp, &self.stamp)
            .await
            .map_err(|e| io_error("writing the verified hash", &self.stamp, e))?;
        tokio::fs::rename(&self.part, &self.image)
            .await
            .map_err(|e| io_error("moving the verified image into place", &self.image, e))
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Takes the download lock, waiting (cancellably) while another process
/// holds it. The lock goes with the returned file.
async fn lock(path: &Path) -> Result<std::fs::File, Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error("opening the download lock", path, e))?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::debug!(lock = %path.display(), "waiting for another download of this image");
                tokio::time::sleep(LOCK_POLL).await;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error("taking the download lock", path, e));
            }
        }
    }
}

/// The hash the publisher's list gives the image.
async fn fetch_checksum(fetcher: &Fetcher, image: &CloudImage) -> Result<String, Error> {
    let url = image.checksums_url();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let (resp, at) = get(fetcher, &url, headers).await?;
    if !resp.status().is_success() || resp.status() == StatusCode::PARTIAL_CONTENT {
        return Err(http_error(resp, at).await);
    }
    if is_html(resp.headers()) {
        return Err(html_error(resp, at).await);
    }
    let list_error = |problem| Error::ChecksumList {
        url: at.clone(),
        file_name: image.file_name.clone(),
        problem,
    };
    let too_large = ListError::TooLarge {
        limit: MAX_CHECKSUM_LIST,
    };
    let announced = content_length(resp.headers());
    if announced.is_some_and(|n| n > MAX_CHECKSUM_LIST as u64) {
        return Err(list_error(too_large));
    }
    let mut body = resp.into_body();
    let mut list = Vec::new();
    loop {
        let frame = match tokio::time::timeout(STALL_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Error::Network {
                    url: at,
                    message: format!("reading the checksum list: {e}"),
                });
            }
            Err(_) => {
                return Err(Error::Network {
                    url: at,
                    message: format!("no data for {}s", STALL_TIMEOUT.as_secs()),
                });
            }
        };
        if let Ok(data) = frame.into_data() {
            list.extend_from_slice(&data);
            if list.len() > MAX_CHECKSUM_LIST {
                return Err(list_error(too_large));
            }
        }
    }
    checksum_for(&list, &image.file_name, image.algorithm).map_err(list_error)
}

/// What to do with the response to a (possibly ranged) image request.
enum Start {
    /// Append to the part from this offset.
    Resume { offset: u64 },
    /// Write the part from byte 0.
    Fresh,
}

/// Downloads the image into the part, verifies it and moves it into place.
async fn download(
    fetcher: &Fetcher,
    image: &CloudImage,
    files: &Files,
    expected: &str,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<(), Error> {
    let url = image.url();
    let mut have = match tokio::fs::metadata(&files.part).await {
        Ok(m) => m.len(),
        Err(_) => 0,
    };
    // Two rounds at most: a resume that cannot be one becomes a fresh start.
    for _ in 0..2 {
        let mut headers = HeaderMap::new();
        // Ranges count stored bytes: no transfer encoding.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if have > 0 {
            let range = HeaderValue::from_str(&format!("bytes={have}-"))
                .map_err(|e| io_error("resuming", &files.part, io::Error::other(e)))?;
            headers.insert(header::RANGE, range);
        }
        let (resp, at) = get(fetcher, &url, headers).await?;
        let status = resp.status();
        let start = match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                match content_range(resp.headers()) {
                    Some((first, _)) if first == have => Start::Resume { offset: have },
                    // Not the bytes we asked for: start over.
                    _ => {
                        tracing::debug!(%url, "unusable Content-Range on resume; restarting");
                        have = 0;
                        continue;
                    }
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                // The part may be complete already (a crash after the
                // download, before the move): check before starting over.
                let (hasher, _) = hash_file(&files.part, u64::MAX, files.algorithm).await?;
                let actual = hasher.finish();
                if actual == expected {
                    return files.commit(&actual).await;
                }
                have = 0;
                continue;
            }
            StatusCode::OK => Start::Fresh,
            _ => return Err(http_error(resp, at).await),
        };
        if is_html(resp.headers()) {
            return Err(html_error(resp, at).await);
        }
        return receive(resp, at, start, files, expected, progress).await;
    }
    Err(Error::Http {
        url,
        status: StatusCode::PARTIAL_CONTENT.as_u16(),
        body: "the server answered a download from byte 0 with a partial one".into(),
    })
}

/// Streams the body into the part, hashing as it goes, then verifies.
async fn receive(
    resp: http::Response<hyper::body::Incoming>,
    url: String,
    start: Start,
    files: &Files,
    expected: &str,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<(), Error> {
    let length = content_length(resp.headers());
    let (offset, total, mut hasher, file) = match start {
        Start::Resume { offset } => {
            let total = content_range(resp.headers())
                .and_then(|(_, total)| total)
                .or(length.map(|n| n + offset));
            let (hasher, hashed) = hash_file(&files.part, offset, files.algorithm).await?;
            if hashed != offset {
                return Err(io_error(
                    "resuming",
                    &files.part,
                    io::Error::other(format!("expected {offset} bytes, found {hashed}")),
                ));
            }
            let file = tokio::fs::OpenOptions::new()
                .append(true)
                .open(&files.part)
                .await;
            (offset, total, hasher, file)
        }
        Start::Fresh => {
            let file = tokio::fs::File::create(&files.part).await;
            (0, length, Hasher::new(files.algorithm), file)
        }
    };
    let file = file.map_err(|e| io_error("opening the download", &files.part, e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let write_error = |e| io_error("writing the download", &files.part, e);
    let mut done = offset;
    let report = |done| {
        progress(DownloadProgress {
            done,
            total,
            resumed_from: offset,
        })
    };
    report(done);
    let mut last_report = Instant::now();
    let mut body = resp.into_body();
    let cut = loop {
        let frame = match tokio::time::timeout(STALL_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break None,
            Ok(Some(Err(e))) => break Some(crate::provider::http::error_chain(&e)),
            Err(_) => break Some(format!("no data for {}s", STALL_TIMEOUT.as_secs())),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        out.write_all(&data).await.map_err(write_error)?;
        hasher.update(&data);
        done += data.len() as u64;
        if last_report.elapsed() >= PROGRESS_EVERY {
            report(done);
            last_report = Instant::now();
        }
    };
    out.flush().await.map_err(write_error)?;
    let file = out.into_inner();
    file.sync_all().await.map_err(write_error)?;
    drop(file);
    let short = length.is_some_and(|n| done - offset < n);
    if let Some(reason) = cut.or_else(|| short.then(|| "connection closed early".to_string())) {
        return Err(Error::Truncated {
            url,
            received: done,
            expected: total,
            reason,
            part: files.part.clone(),
        });
    }
    report(done);
    let actual = hasher.finish();
    if actual != expected {
        // A bad part must not be resumed: start clean next time.
        let _ = tokio::fs::remove_file(&files.part).await;
        return Err(Error::ChecksumMismatch {
            url,
            algorithm: files.algorithm,
            expected: expected.into(),
            actual,
        });
    }
    files.commit(&actual).await
}

/// Hashes the first `limit` bytes of `path` (on a blocking thread: a part
/// can be hundreds of MB), returning the state and the bytes hashed.
async fn hash_file(path: &Path, limit: u64, algorithm: Algorithm) -> Result<(Hasher, u64), Error> {
    let owned = path.to_path_buf();
    let work = tokio::task::spawn_blocking(move || -> io::Result<(Hasher, u64)> {
        let mut file = std::fs::File::open(&owned)?.take(limit);
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let read = file.read(&mut buf)?;
            if read == 0 {
                return Ok((hasher, n));
            }
            hasher.update(&buf[..read]);
            n += read as u64;
        }
    });
    match work.await {
        Ok(r) => r.map_err(|e| io_error("reading the partial download", path, e)),
        Err(e) => Err(io_error(
            "reading the partial download",
            path,
            io::Error::other(e),
        )),
    }
}

/// A running SHA-256 or SHA-512.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The hash in lowercase hex.
    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => data_encoding::HEXLOWER.encode(&h.finalize()),
            Hasher::Sha512(h) => data_encoding::HEXLOWER.encode(&h.finalize()),
        }
    }
}

/// GETs `url`, following up to [`MAX_REDIRECTS`] redirects to https://
/// URLs; returns the final response and the URL that gave it.
async fn get(
    fetcher: &Fetcher,
    url: &str,
    headers: HeaderMap,
) -> Result<(http::Response<hyper::body::Incoming>, String), Error> {
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let uri = https_uri(&current)?;
        let resp = fetcher
            .get(WHAT, uri.clone(), headers.clone())
            .await
            .map_err(|e| transport_error(&current, e))?;
        if !is_redirect(resp.status()) {
            return Ok((resp, current));
        }
        let Some(location) = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(Error::Http {
                url: current,
                status: resp.status().as_u16(),
                body: "a redirect without a Location header".into(),
            });
        };
        let next = resolve(&uri, location.trim());
        if !next.starts_with("https://") {
            return Err(Error::InsecureRedirect {
                url: current,
                location: crate::util::terminal_safe(location).into_owned(),
            });
        }
        tracing::debug!(from = %current, to = %next, "following redirect");
        current = next;
    }
    Err(Error::TooManyRedirects {
        url: url.into(),
        limit: MAX_REDIRECTS,
    })
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn https_uri(url: &str) -> Result<Uri, Error> {
    let bad = |reason: String| Error::BadUrl {
        url: url.into(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(bad(
            "images are fetched over https:// only (the checksum list's trust rests on TLS)".into(),
        ));
    }
    Ok(uri)
}

/// `location` made absolute against `base` (RFC 9110 §10.2.2 allows a
/// relative reference).
fn resolve(base: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.into();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let authority = base.authority().map_or("", |a| a.as_str());
    let (path, query) = match location.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (location, String::new()),
    };
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{path}")
    };
    format!(
        "{scheme}://{authority}{}{query}",
        remove_dot_segments(&joined)
    )
}

/// `/a/b/../c/./d` as `/a/c/d` (RFC 3986 §5.2.4), so a relative redirect
/// names the path a browser would fetch.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                // `/a/b/..` is the directory `/a/`.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn transport_error(url: &str, e: ProviderError) -> Error {
    match e {
        ProviderError::Tls { message, .. } => Error::Tls {
            url: url.into(),
            message,
        },
        ProviderError::Network { message, .. } => Error::Network {
            url: url.into(),
            message,
        },
        other => Error::Network {
            url: url.into(),
            message: other.to_string(),
        },
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` as `(FIRST, TOTAL)`; TOTAL may
/// be `*` (unknown).
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (unit, rest) = value.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, total.trim().parse().ok()))
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/html"))
}

/// The start of a body, for an error message; never more than a few KiB.
async fn excerpt(resp: http::Response<hyper::body::Incoming>) -> String {
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    let read = async {
        while bytes.len() < ERROR_BODY_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    bytes.truncate(ERROR_BODY_BYTES);
    summarize_body(&bytes)
}

async fn http_error(resp: http::Response<hyper::body::Incoming>, url: String) -> Error {
    let status = resp.status().as_u16();
    Error::Http {
        url,
        status,
        body: excerpt(resp).await,
    }
}

async fn html_error(resp: http::Response<hyper::body::Incoming>, url: String) -> Error {
    Error::HtmlPage {
        url,
        body: excerpt(resp).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hint;

    const FILE: &str = "debian-12-genericcloud-amd64.qcow2";

    fn h(c: char, alg: Algorithm) -> String {
        c.to_string().repeat(alg.hex_len())
    }

    #[test]
    fn text_and_binary_lines_should_both_be_read() {
        let alg = Algorithm::Sha512;
        let list = format!(
            "# comment\n\n{}  other.qcow2\n{}  {FILE}\n",
            h('a', alg),
            h('b', alg)
        );
        assert_eq!(checksum_for(list.as_bytes(), FILE, alg), Ok(h('b', alg)));
        let alg = Algorithm::Sha256;
        let list = format!("{} *x.img\r\n{} *{FILE}\r\n", h('1', alg), "AB".repeat(32));
        assert_eq!(
            checksum_for(list.as_bytes(), FILE, alg),
            Ok("ab".repeat(32))
        );
    }

    #[test]
    fn bsd_lines_should_be_read() {
        let alg = Algorithm::Sha256;
        let list = format!("SHA256 ({FILE}) = {}\n", h('c', alg));
        assert_eq!(checksum_for(list.as_bytes(), FILE, alg), Ok(h('c', alg)));
    }

    #[test]
    fn a_list_without_the_file_should_say_so() {
        let alg = Algorithm::Sha512;
        let list = format!("{}  {FILE}.raw\n{}  x-{FILE}\n", h('a', alg), h('b', alg));
        assert_eq!(
            checksum_for(list.as_bytes(), FILE, alg),
            Err(ListError::NotListed)
        );
        assert_eq!(checksum_for(b"", FILE, alg), Err(ListError::NotListed));
    }

    #[test]
    fn bad_hashes_for_the_file_should_be_refused() {
        let alg = Algorithm::Sha512;
        // A SHA-256 where a SHA-512 belongs, and a non-hex one.
        for bad in [h('a', Algorithm::Sha256), "z".repeat(128)] {
            let list = format!("{bad}  {FILE}\n");
            let e = checksum_for(list.as_bytes(), FILE, alg);
            assert!(
                matches!(
                    e,
                    Err(ListError::BadHash {
                        line: 1,
                        len: 128,
                        ..
                    })
                ),
                "{e:?}"
            );
        }
        // A junk line about another file does not matter.
        let list = format!("nonsense  other\n{}  {FILE}\n", h('d', alg));
        assert_eq!(checksum_for(list.as_bytes(), FILE, alg), Ok(h('d', alg)));
    }

    #[test]
    fn conflicting_and_oversized_lists_should_be_refused() {
        let alg = Algorithm::Sha256;
        let list = format!("{}  {FILE}\n{} *{FILE}\n", h('a', alg), h('b', alg));
        assert_eq!(
            checksum_for(list.as_bytes(), FILE, alg),
            Err(ListError::Conflicting)
        );
        let same = format!("{}  {FILE}\n{} *{FILE}\n", h('a', alg), h('a', alg));
        assert_eq!(checksum_for(same.as_bytes(), FILE, alg), Ok(h('a', alg)));
        let big = vec![b'#'; MAX_CHECKSUM_LIST + 1];
        assert!(matches!(
            checksum_for(&big, FILE, alg),
            Err(ListError::TooLarge { .. })
        ));
        assert_eq!(
            checksum_for(&[0xff, 0xfe], FILE, alg),
            Err(ListError::NotText)
        );
    }

    #[test]
    fn the_catalogue_should_give_the_publishers_urls() {
        let cases = [
            (
                Os::Debian,
                "12",
                Arch::Amd64,
                "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
                "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
                "debian-12-amd64",
            ),
            (
                Os::Debian,
                "bookworm",
                Arch::Arm64,
                "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-arm64.qcow2",
                "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
                "debian-12-arm64",
            ),
            (
                Os::Debian,
                "13",
                Arch::Amd64,
                "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2",
                "https://cloud.debian.org/images/cloud/trixie/latest/SHA512SUMS",
                "debian-13-amd64",
            ),
            (
                Os::Ubuntu,
                "24.04",
                Arch::Amd64,
                "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img",
                "https://cloud-images.ubuntu.com/releases/24.04/release/SHA256SUMS",
                "ubuntu-24.04-amd64",
            ),
            (
                Os::Ubuntu,
                "Jammy",
                Arch::Arm64,
                "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-arm64.img",
                "https://cloud-images.ubuntu.com/releases/22.04/release/SHA256SUMS",
                "ubuntu-22.04-arm64",
            ),
        ];
        for (os, version, arch, url, sums, key) in cases {
            let img = official(os, version, arch).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(img.url(), url);
            assert_eq!(img.checksums_url(), sums);
            assert_eq!(img.cache_key, key);
            assert!(url.ends_with(&img.file_name));
            let expected = if os == Os::Debian {
                Algorithm::Sha512
            } else {
                Algorithm::Sha256
            };
            assert_eq!(img.algorithm, expected);
        }
    }

    #[test]
    fn a_mirror_should_replace_the_base_only() {
        let img = official(Os::Ubuntu, "24.04", Arch::Amd64)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_base_url("https://mirror.example/ubuntu-cloud/");
        assert_eq!(
            img.url(),
            "https://mirror.example/ubuntu-cloud/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img"
        );
        assert_eq!(
            img.checksums_url(),
            "https://mirror.example/ubuntu-cloud/24.04/release/SHA256SUMS"
        );
    }

    #[test]
    fn unknown_versions_should_list_the_known_ones() {
        let e = official(Os::Ubuntu, "20.04", Arch::Amd64).expect_err("unknown");
        let s = e.to_string();
        assert!(
            s.contains("20.04") && s.contains("22.04 (jammy)") && s.contains("24.04 (noble)"),
            "{s}"
        );
        assert!(e.hint().is_some_and(|h| h.contains("24.04")));
        let e = official(Os::Debian, "11", Arch::Amd64).expect_err("unknown");
        assert!(e.to_string().contains("12 (bookworm)"), "{e}");
    }

    #[test]
    fn names_should_parse() {
        assert_eq!("x86_64".parse::<Arch>().ok(), Some(Arch::Amd64));
        assert_eq!("aarch64".parse::<Arch>().ok(), Some(Arch::Arm64));
        assert!(matches!(
            "riscv64".parse::<Arch>(),
            Err(Error::UnsupportedArch { .. })
        ));
        assert_eq!("Debian".parse::<Os>().ok(), Some(Os::Debian));
        assert!(matches!("arch".parse::<Os>(), Err(Error::UnknownOs { .. })));
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(Arch::host().is_ok());
        }
    }

    #[test]
    fn redirect_targets_should_resolve() {
        let base: Uri = "https://h.example/a/b/file.img?x=1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resolve(&base, "https://m.example/f"), "https://m.example/f");
        assert_eq!(resolve(&base, "http://m.example/f"), "http://m.example/f");
        assert_eq!(resolve(&base, "//m.example/f"), "https://m.example/f");
        assert_eq!(resolve(&base, "/c/f"), "https://h.example/c/f");
        assert_eq!(resolve(&base, "g.img"), "https://h.example/a/b/g.img");
        assert_eq!(
            resolve(&base, "../c/./g?v=2"),
            "https://h.example/a/c/g?v=2"
        );
        assert_eq!(resolve(&base, "/x/../../y"), "https://h.example/y");
        assert_eq!(resolve(&base, ".."), "https://h.example/a/");
    }

    #[test]
    fn content_range_should_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-199/200"),
        );
        assert_eq!(content_range(&h), Some((100, Some(200))));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 5-9/*"),
        );
        assert_eq!(content_range(&h), Some((5, None)));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("items 1-2/3"),
        );
        assert_eq!(content_range(&h), None);
    }

    #[test]
    fn http_urls_should_be_refused() {
        assert!(matches!(
            https_uri("http://cloud.debian.org/x"),
            Err(Error::BadUrl { .. })
        ));
        assert!(https_uri("https://cloud.debian.org/x").is_ok());
    }
}
