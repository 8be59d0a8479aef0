//! Errors: [`Error`] for setting the agent up, [`AppError`] for requests.
//!
//! Every error response carries a JSON [`ErrorBody`] (clients parse one
//! shape). [`AppError`] logs the internal cause and sends only a message
//! meant for the user, so paths, errno values and command lines of the VM
//! never leak through an error (axum's `examples/error-handling`).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use spuff_agent_api::ErrorBody;

/// An error setting up or starting the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable token was configured (none, blank, or with whitespace or
    /// control characters) and running without one was not allowed.
    #[error(
        "no usable agent token (none, blank, or with spaces): set \"token\" in the config file \
         or SPUFF_AGENT_TOKEN (or run with --insecure-no-auth-for-local-development on a \
         development machine)"
    )]
    MissingToken,
    /// The config file could not be read.
    #[error("cannot read the agent config {}", path.display())]
    ReadConfig {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid JSON for [`AgentConfig`](spuff_agent_api::AgentConfig).
    #[error("invalid agent config {}", path.display())]
    ParseConfig {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The listen address is not a loopback address.
    #[error("refusing to listen on {addr}: the agent only listens on loopback (127.0.0.1 or ::1)")]
    NonLoopbackBind {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An error answering a request: a status, a message for the client, and for
/// server errors an internal cause that is logged but never sent.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
    internal: Option<String>,
}

impl AppError {
    /// A client error (4xx) whose message is safe to send as is.
    pub fn client(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
            internal: None,
        }
    }

    /// `400 Bad Request` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, message)
    }

    /// `500 Internal Server Error`: the client reads `message`; `internal`
    /// (an io error, a path) only goes to the log.
    pub fn internal(message: impl Into<String>, internal: impl std::fmt::Display) -> Self {
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            internal: Some(internal.to_string()),
        }
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            tracing::error!(status = self.status.as_u16(), error = %internal, "{}", self.message);
        } else {
            tracing::debug!(status = self.status.as_u16(), "{}", self.message);
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
