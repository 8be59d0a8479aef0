//! Cloud image downloads (`provider::local::image::ensure`) against a real
//! HTTPS file server on 127.0.0.1: the fake cloud's TLS (a CA per server,
//! h2 by ALPN) in front of a generated image and its checksum list, with
//! switches for the faults mirrors really have: truncated bodies, ignored
//! `Range` headers, redirects, HTML error pages, lists that do not match.
//!
//! Nothing here is Unix-only: it runs under Wine too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Digest;
use spuff::Hint;
use spuff::provider::local::image::{
    self, Algorithm, Arch, CloudImage, DownloadProgress, Error, ListError, Os,
};
use spuff::provider::{HttpConfig, ProxyConfig};
use tokio::net::TcpListener;

use crate::fakecloud::server::tls_material;

type Body = BoxBody<Bytes, std::io::Error>;

/// The image's size: enough for several body frames and a real half.
const IMAGE_LEN: usize = 3 << 20;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    status: u16,
}

/// What the server serves, and how.
#[derive(Default)]
struct State {
    files: HashMap<String, Bytes>,
    /// Served instead of whatever is at the path: status, content type, body.
    overrides: HashMap<String, (u16, &'static str, String)>,
    /// `path → Location`, answered with 302.
    redirects: HashMap<String, String>,
    /// The next GET of this path sends half its body, then breaks the
    /// connection.
    truncate_next: Option<String>,
    /// Answer ranged requests with the whole file (200), as some mirrors do.
    ignore_range: bool,
    log: Vec<Seen>,
}

struct FileServer {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileServer {
    async fn start() -> Self {
        let (ca_pem, tls) = tls_material();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| serve(st.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FileServer {
            addr,
            ca_pem,
            state,
            task,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.addr.port())
    }

    /// Clients trust this server's CA, and nothing else.
    fn http(&self) -> HttpConfig {
        HttpConfig {
            extra_ca_pem: Some(self.ca_pem.clone()),
            native_roots: false,
            webpki_roots: false,
            proxy: ProxyConfig::None,
            ..HttpConfig::default()
        }
    }

    fn put(&self, path: &str, body: impl Into<Bytes>) {
        self.state().files.insert(path.into(), body.into());
    }

    fn log(&self) -> Vec<Seen> {
        self.state().log.clone()
    }

    /// GETs of `path` so far.
    fn gets(&self, path: &str) -> Vec<Seen> {
        self.log().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn serve(
    st: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let range = req
        .headers()
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let lock = || st.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = lock();
    let resp = answer(&mut s, &path, range.as_deref());
    let status = resp.status().as_u16();
    s.log.push(Seen {
        path,
        range,
        status,
    });
    Ok(resp)
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let body: Bytes = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(Full::new(body).map_err(|n| match n {}).boxed())
        .expect("response")
}

fn answer(s: &mut State, path: &str, range: Option<&str>) -> Response<Body> {
    if let Some(location) = s.redirects.get(path) {
        return Response::builder()
            .status(302)
            .header("location", location.as_str())
            .body(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
            .expect("response");
    }
    if let Some((status, content_type, body)) = s.overrides.get(path) {
        return full(*status, content_type, body.clone());
    }
    let Some(file) = s.files.get(path).cloned() else {
        return full(404, "text/plain", "no such file");
    };
    let len = file.len();
    let start = range
        .filter(|_| !s.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, body, content_range) = match start {
        Some(n) if n >= len => {
            let resp = Response::builder()
                .status(416)
                .header("content-range", format!("bytes */{len}"))
                .body(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
                .expect("response");
            return resp;
        }
        Some(n) => (
            206,
            file.slice(n..),
            Some(format!("bytes {n}-{}/{len}", len - 1)),
        ),
        None => (200, file, None),
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/octet-stream")
        .header("content-length", body.len())
        .header("accept-ranges", "bytes");
    if let Some(cr) = content_range {
        builder = builder.header("content-range", cr);
    }
    if s.truncate_next.as_deref() == Some(path) {
        s.truncate_next = None;
        // Half the body, a moment for it to leave, then a broken connection.
        let half = body.slice(..body.len() / 2);
        let frames = futures::stream::iter(vec![Ok(Frame::data(half))]).chain(
            futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fault: truncated",
                ))
            }),
        );
        return builder
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .expect("response");
    }
    builder
        .body(Full::new(body).map_err(|n| match n {}).boxed())
        .expect("response")
}

/// Pseudo-random bytes (xorshift), the same for every test.
fn image_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(IMAGE_LEN);
    while out.len() < IMAGE_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(IMAGE_LEN);
    out
}

fn hash(algorithm: Algorithm, data: &[u8]) -> String {
    match algorithm {
        Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(data)),
        _ => hex::encode(sha2::Sha512::digest(data)),
    }
}

/// A server holding `os`'s image at the catalogue's own paths, with a
/// checksum list written the way its publisher writes it.
struct Setup {
    server: FileServer,
    image: CloudImage,
    data: Vec<u8>,
    cache: tempfile::TempDir,
}

impl Setup {
    async fn new(os: Os) -> Self {
        let server = FileServer::start().await;
        let version = if os == Os::Debian { "12" } else { "24.04" };
        let image = image::official(os, version, Arch::Amd64)
            .expect("catalogue")
            .with_base_url(server.base_url());
        let data = image_bytes();
        let sum = hash(image.algorithm, &data);
        let other = "0".repeat(image.algorithm.hex_len());
        // Debian's lists are text mode (two spaces), Ubuntu's binary (`*`).
        let list = if os == Os::Debian {
            format!(
                "{other}  debian-12-genericcloud-amd64.raw\n{sum}  {}\n",
                image.file_name
            )
        } else {
            format!(
                "{other} *ubuntu-24.04-server-cloudimg-amd64.tar.gz\n{sum} *{}\n",
                image.file_name
            )
        };
        server.put(&format!("/{}", image.path), data.clone());
        server.put(&format!("/{}", image.checksums_path), list);
        Setup {
            server,
            image,
            data,
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn image_path(&self) -> String {
        format!("/{}", self.image.path)
    }

    fn cached(&self) -> PathBuf {
        self.cache
            .path()
            .join(&self.image.cache_key)
            .join(&self.image.file_name)
    }

    fn part(&self) -> PathBuf {
        with_suffix(&self.cached(), ".part")
    }

    async fn ensure(&self) -> Result<PathBuf, Error> {
        image::ensure(&self.image, self.cache.path(), &self.server.http(), &|_| {}).await
    }

    /// [`Setup::ensure`], keeping every progress report.
    async fn ensure_watched(&self) -> (Result<PathBuf, Error>, Vec<DownloadProgress>) {
        let seen = Mutex::new(Vec::new());
        let report = |p: DownloadProgress| seen.lock().expect("progress").push(p);
        let r = image::ensure(&self.image, self.cache.path(), &self.server.http(), &report).await;
        (r, seen.into_inner().expect("progress"))
    }

    /// The image, its part and its stamp, as far as they exist.
    fn leftovers(&self) -> Vec<PathBuf> {
        let stamp = with_suffix(
            &self.cached(),
            &format!(".{}", self.image.algorithm.as_str()),
        );
        [self.cached(), self.part(), stamp]
            .into_iter()
            .filter(|p| p.exists())
            .collect()
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[tokio::test]
async fn ensure_should_download_verify_and_then_use_the_cache() {
    let t = Setup::new(Os::Debian).await;
    let (r, progress) = t.ensure_watched().await;
    let path = r.expect("downloaded");
    assert_eq!(path, t.cached());
    assert!(std::fs::read(&path).expect("cached image") == t.data);
    assert!(!t.part().exists());
    let stamp = std::fs::read_to_string(with_suffix(&path, ".sha512")).expect("stamp");
    assert_eq!(
        stamp,
        format!(
            "{}  {}\n",
            hash(Algorithm::Sha512, &t.data),
            t.image.file_name
        )
    );
    let first = progress.first().expect("a first report");
    let last = progress.last().expect("a last report");
    assert_eq!((first.done, first.resumed_from), (0, 0));
    assert_eq!(last.done, IMAGE_LEN as u64);
    assert_eq!(last.total, Some(IMAGE_LEN as u64));
    // The list first, then the image, once each.
    let paths: Vec<String> = t.server.log().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [format!("/{}", t.image.checksums_path), t.image_path()]
    );

    let again = t.ensure().await.expect("cached");
    assert_eq!(again, path);
    assert_eq!(t.server.log().len(), 2, "a cached image needs no request");
}

#[tokio::test]
async fn ensure_should_read_ubuntu_binary_mode_lists_and_follow_redirects() {
    let t = Setup::new(Os::Ubuntu).await;
    // A mirror network sends the image elsewhere; relative and absolute
    // Locations both occur.
    t.server.put("/pool/b/image.img", t.data.clone());
    (t.server.state().redirects).insert(t.image_path(), "/pool/a/image.img".into());
    (t.server.state().redirects).insert("/pool/a/image.img".into(), "../b/image.img".into());
    let path = t.ensure().await.expect("downloaded through redirects");
    assert!(std::fs::read(&path).expect("cached image") == t.data);
    let statuses: Vec<(String, u16)> = (t.server.log().into_iter())
        .map(|s| (s.path, s.status))
        .collect();
    assert_eq!(
        statuses[1..],
        [
            (t.image_path(), 302),
            ("/pool/a/image.img".into(), 302),
            ("/pool/b/image.img".into(), 200)
        ]
    );
    assert!(with_suffix(&path, ".sha256").exists());
}

#[tokio::test]
async fn a_redirect_to_plain_http_should_be_refused() {
    let t = Setup::new(Os::Debian).await;
    let to = format!("http://127.0.0.1:{}/x.qcow2", t.server.addr.port());
    (t.server.state().redirects).insert(t.image_path(), to.clone());
    let e = t.ensure().await.expect_err("http refused");
    match &e {
        Error::InsecureRedirect { location, .. } => assert_eq!(location, &to),
        other => panic!("{other:?}"),
    }
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[tokio::test]
async fn endless_redirects_should_stop() {
    let t = Setup::new(Os::Debian).await;
    (t.server.state().redirects).insert(t.image_path(), t.image_path());
    let e = t.ensure().await.expect_err("a loop");
    assert!(
        matches!(e, Error::TooManyRedirects { limit: 5, .. }),
        "{e:?}"
    );
    assert_eq!(t.server.gets(&t.image_path()).len(), 6);
}

#[tokio::test]
async fn a_checksum_mismatch_should_name_both_hashes_and_leave_nothing() {
    let t = Setup::new(Os::Debian).await;
    let wrong = "ab".repeat(64);
    let list = format!("{wrong}  {}\n", t.image.file_name);
    t.server.put(&format!("/{}", t.image.checksums_path), list);
    let e = t.ensure().await.expect_err("mismatch");
    let actual_hash = hash(Algorithm::Sha512, &t.data);
    match &e {
        Error::ChecksumMismatch {
            url,
            expected,
            actual,
            ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &actual_hash);
            assert!(url.ends_with(&t.image.path), "{url}");
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains(&wrong) && text.contains(&actual_hash),
        "{text}"
    );
    assert!(e.hint().is_some());
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[tokio::test]
async fn a_truncated_download_should_resume_with_a_range_request() {
    let t = Setup::new(Os::Debian).await;
    t.server.state().truncate_next = Some(t.image_path());
    let e = t.ensure().await.expect_err("truncated");
    let Error::Truncated { received, part, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(e.to_string().contains("resumes"), "{e}");
    assert_eq!(part, &t.part());
    let kept = std::fs::metadata(t.part()).expect("part kept").len();
    assert_eq!(kept, *received);
    assert!(kept > 0 && kept < IMAGE_LEN as u64, "{kept}");
    assert!(!t.cached().exists());

    let (r, progress) = t.ensure_watched().await;
    let path = r.expect("resumed");
    assert!(std::fs::read(&path).expect("cached image") == t.data);
    let gets = t.server.gets(&t.image_path());
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].range.as_deref(), Some(&*format!("bytes={kept}-")));
    assert_eq!(gets[1].status, 206);
    assert!(progress.iter().all(|p| p.resumed_from == kept));
    assert_eq!(progress.first().map(|p| p.done), Some(kept));
}

#[tokio::test]
async fn a_server_ignoring_range_should_restart_the_download() {
    let t = Setup::new(Os::Debian).await;
    t.server.state().ignore_range = true;
    // A part that is not even the image's start: a restart must overwrite it.
    std::fs::create_dir_all(t.part().parent().expect("dir")).expect("mkdir");
    std::fs::write(t.part(), vec![0x55u8; 100_000]).expect("part");
    let path = t.ensure().await.expect("restarted");
    assert!(std::fs::read(&path).expect("cached image") == t.data);
    let gets = t.server.gets(&t.image_path());
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(gets[0].status, 200);
}

#[tokio::test]
async fn a_complete_part_should_be_used_after_416() {
    // As a crash between download and rename leaves it.
    let t = Setup::new(Os::Debian).await;
    std::fs::create_dir_all(t.part().parent().expect("dir")).expect("mkdir");
    std::fs::write(t.part(), &t.data).expect("part");
    let path = t.ensure().await.expect("used the part");
    assert!(std::fs::read(&path).expect("cached image") == t.data);
    let gets = t.server.gets(&t.image_path());
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].status, 416);

    // A part too long to be the image starts over.
    let t = Setup::new(Os::Debian).await;
    std::fs::create_dir_all(t.part().parent().expect("dir")).expect("mkdir");
    std::fs::write(t.part(), vec![1u8; IMAGE_LEN + 10]).expect("part");
    let path = t.ensure().await.expect("restarted");
    assert!(std::fs::read(&path).expect("cached image") == t.data);
    let statuses: Vec<u16> = (t.server.gets(&t.image_path()).iter())
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [416, 200]);
}

#[tokio::test]
async fn a_404_html_page_should_be_a_typed_http_error() {
    let t = Setup::new(Os::Debian).await;
    let page = "<!DOCTYPE html><html><head><title>404 Not Found</title></head>\
                <body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>";
    (t.server.state().overrides).insert(t.image_path(), (404, "text/html", page.into()));
    let e = t.ensure().await.expect_err("404");
    match &e {
        Error::Http { url, status, body } => {
            assert_eq!(*status, 404);
            assert!(url.ends_with(&t.image.path), "{url}");
            assert!(
                body.contains("404 Not Found") && !body.contains("<p>"),
                "{body}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.hint().is_some());
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[tokio::test]
async fn an_html_page_with_200_should_not_be_taken_for_the_image() {
    let t = Setup::new(Os::Debian).await;
    let page = "<html><head><title>Welcome to the hotel wifi</title></head></html>";
    (t.server.state().overrides).insert(t.image_path(), (200, "text/html", page.into()));
    let e = t.ensure().await.expect_err("html");
    assert!(
        matches!(&e, Error::HtmlPage { body, .. } if body.contains("hotel wifi")),
        "{e:?}"
    );
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

#[tokio::test]
async fn a_list_not_naming_the_file_should_fail_before_the_download() {
    let t = Setup::new(Os::Debian).await;
    let list = format!("{}  debian-12-genericcloud-arm64.qcow2\n", "c".repeat(128));
    t.server.put(&format!("/{}", t.image.checksums_path), list);
    let e = t.ensure().await.expect_err("not listed");
    match &e {
        Error::ChecksumList {
            url,
            file_name,
            problem,
        } => {
            assert!(url.ends_with("SHA512SUMS"), "{url}");
            assert_eq!(file_name, &t.image.file_name);
            assert_eq!(problem, &ListError::NotListed);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&t.image.file_name), "{e}");
    assert!(t.server.gets(&t.image_path()).is_empty());
}

#[tokio::test]
async fn a_missing_checksum_list_should_be_a_typed_http_error() {
    let t = Setup::new(Os::Ubuntu).await;
    (t.server.state().files).remove(&format!("/{}", t.image.checksums_path));
    let e = t.ensure().await.expect_err("no list");
    assert!(
        matches!(&e, Error::Http { status: 404, url, .. } if url.ends_with("SHA256SUMS")),
        "{e:?}"
    );
    assert!(t.server.gets(&t.image_path()).is_empty());
}

#[tokio::test]
async fn concurrent_ensures_should_download_once() {
    let t = Setup::new(Os::Debian).await;
    let (a, b) = tokio::join!(t.ensure(), t.ensure());
    assert_eq!(a.expect("first"), t.cached());
    assert_eq!(b.expect("second"), t.cached());
    assert_eq!(t.server.gets(&t.image_path()).len(), 1);
    assert!(std::fs::read(t.cached()).expect("cached image") == t.data);
}

#[tokio::test]
async fn an_untrusted_server_should_be_a_tls_error() {
    let t = Setup::new(Os::Debian).await;
    let http = HttpConfig {
        extra_ca_pem: None,
        webpki_roots: true,
        ..t.server.http()
    };
    let e = image::ensure(&t.image, t.cache.path(), &http, &|_| {})
        .await
        .expect_err("untrusted");
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.hint().is_some_and(|h| h.contains("CA")));
}
