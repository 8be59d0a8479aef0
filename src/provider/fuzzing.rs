//! Fuzz entries for what providers send back (`fuzz/`, `spuff::fuzzing`):
//! a server or droplet object, and an error body. Both arrive from a
//! network the user does not control (a proxy, a captive portal, a broken
//! API), so any bytes must give a typed result, never a panic, and what
//! reaches the terminal must be safe to print.

use super::digitalocean::Droplet;
use super::hetzner::Server;
use super::http::ErrorShape;

/// `data` as a droplet and as a server object, turned into an instance.
pub(crate) fn instance(data: &[u8]) {
    if let Ok(d) = serde_json::from_slice::<Droplet>(data) {
        let _ = d.into_instance();
    }
    if let Ok(s) = serde_json::from_slice::<Server>(data) {
        let _ = s.into_instance();
    }
}

/// `data` as an error body in DigitalOcean's shape and in Hetzner's: the
/// message is one bounded, terminal-safe line.
pub(crate) fn error_body(data: &[u8]) {
    let shapes = [
        ErrorShape {
            code: "/id",
            message: "/message",
            request_id: Some("/request_id"),
            request_id_header: "x-request-id",
        },
        ErrorShape {
            code: "/error/code",
            message: "/error/message",
            request_id: None,
            request_id_header: "x-correlation-id",
        },
    ];
    let mut headers = hyper::HeaderMap::new();
    if let Ok(v) = hyper::header::HeaderValue::from_bytes(&data[..data.len().min(64)]) {
        headers.insert("x-request-id", v.clone());
        headers.insert("x-correlation-id", v);
    }
    for shape in shapes {
        let body = shape.parse(data, &headers);
        for text in [
            Some(&body.message),
            body.code.as_ref(),
            body.request_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                crate::util::terminal_safe(text) == text.as_str(),
                "not terminal-safe: {text:?}"
            );
        }
        // 300 characters, each at most a 10-character escape.
        assert!(body.message.chars().count() <= 3_100, "{}", body.message);
    }
}
