//! The HTTP API: routes, the token check, and JSON for every error.
//!
//! The shapes are the types in `spuff-agent-api`. Everything but
//! `GET /health` needs the token. Errors produced outside the handlers
//! (axum's rejections for bad JSON or query strings, 405, 413) are turned
//! into the same JSON [`ErrorBody`] by [`json_errors`], so a client never has
//! to parse plain text.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use spuff_agent_api::{
    Activity, ActivityKind, BootstrapStatus, CloudInit, ErrorBody, ExecRequest, ExecResponse,
    Health, Heartbeat, Logs, LogsQuery, Metrics, ProcessList, Status, TOKEN_HEADER, Timestamp,
    paths,
};

use crate::error::AppError;
use crate::state::AppState;

/// Builds the agent's router.
///
/// The idle monitor is not started here; call
/// [`AppState::start_monitor`] (or use [`serve`](crate::serve), which does).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use spuff_agent::{AgentOptions, AppState, SystemPaths};
/// use spuff_agent_api::AgentConfig;
///
/// let dir = std::env::temp_dir().join("fake-vm");
/// let state = AppState::new(AgentOptions {
///     config: AgentConfig::new("s3cret"),
///     paths: SystemPaths::under(&dir),
///     ..Default::default()
/// })?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let _monitor = state.start_monitor();
/// tokio::spawn(async move { axum::serve(listener, spuff_agent::app(state)).await });
/// // ... talk HTTP to `addr` with `X-Spuff-Token: s3cret` ...
/// # let _ = addr;
/// # Ok(())
/// # }
/// ```
pub fn app(state: AppState) -> Router {
    let body_limit = state.inner.options.max_body_bytes;
    let authed = Router::new()
        .route(paths::STATUS, get(status))
        .route(paths::METRICS, get(metrics))
        .route(paths::PROCESSES, get(processes))
        .route(paths::EXEC, post(exec))
        .route(paths::HEARTBEAT, post(heartbeat))
        .route(paths::LOGS, get(logs))
        .route(paths::CLOUD_INIT, get(cloud_init))
        .route(paths::ACTIVITY, get(activity))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route(paths::HEALTH, get(health))
        .merge(authed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Requests that record their own, more specific kind of activity.
const OWN_ACTIVITY: [&str; 2] = [paths::HEARTBEAT, paths::EXEC];

/// Whether a request is someone using the VM. Looking never is: `status
/// --watch` or a dashboard polling `/metrics` must not keep a forgotten VM
/// (and its bill) alive forever, so no `GET` counts (issue 12).
fn counts_as_activity(method: &axum::http::Method, path: &str) -> bool {
    !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD)
        && !OWN_ACTIVITY.contains(&path)
}

async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req.headers().get(TOKEN_HEADER).map(HeaderValue::as_bytes);
    if !state.token_ok(given) {
        let message = if given.is_none() {
            format!("missing {TOKEN_HEADER} header")
        } else {
            format!("wrong {TOKEN_HEADER}")
        };
        tracing::warn!(path = req.uri().path(), "{message}");
        return AppError::client(StatusCode::UNAUTHORIZED, message).into_response();
    }
    let path = req.uri().path();
    if counts_as_activity(req.method(), path) {
        state.inner.tracker.record(
            ActivityKind::AgentRequest,
            format!("{} {path}", req.method()),
        );
    }
    next.run(req).await
}

async fn not_found() -> AppError {
    AppError::client(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Rewrites error responses that are not JSON yet (axum's rejections, 405)
/// into an [`ErrorBody`], keeping their status and headers such as `Allow`.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_string(),
        // Rejection texts describe the client's mistake and are safe; for
        // server errors only the reason phrase is.
        s if s.is_client_error() && !text.is_empty() => text,
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let body = serde_json::to_vec(&ErrorBody { error }).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        service: "spuff-agent".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn status(State(state): State<AppState>) -> Json<Status> {
    let paths = &state.inner.options.paths;
    let bootstrap_status = match tokio::fs::read_to_string(&paths.bootstrap_status).await {
        Ok(content) => BootstrapStatus::from_file_content(&content),
        Err(err) => {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(%err, "cannot read the bootstrap status file");
            }
            BootstrapStatus::Unknown
        }
    };
    let cloud = state.inner.cloud_init.read().await;
    Json(Status {
        uptime_seconds: state.inner.sampler.uptime(),
        idle_seconds: state.inner.tracker.idle().as_secs(),
        hostname: state.inner.sampler.host_name(),
        cloud_init_done: cloud.done,
        cloud_init_status: Some(cloud.status),
        cloud_init_errors: cloud.errors,
        bootstrap_ready: bootstrap_status == BootstrapStatus::Ready,
        bootstrap_status,
        agent_version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn metrics(State(state): State<AppState>) -> Json<Metrics> {
    // A few small /proc reads and one statvfs: cheaper than a hop to the
    // blocking pool.
    Json(state.inner.sampler.metrics())
}

async fn processes(State(state): State<AppState>) -> Result<Json<ProcessList>, AppError> {
    let sampler = std::sync::Arc::clone(&state.inner.sampler);
    let list = tokio::task::spawn_blocking(move || sampler.top_processes())
        .await
        .map_err(|e| AppError::internal("cannot list processes", e))?;
    Ok(Json(list))
}

async fn exec(
    State(state): State<AppState>,
    Json(req): Json<ExecRequest>,
) -> Result<Json<ExecResponse>, AppError> {
    let o = &state.inner.options;
    let limits = crate::exec::Limits {
        default_timeout: o.exec_default_timeout,
        max_timeout: o.exec_max_timeout.max(Duration::from_secs(1)),
        output_cap: o.exec_output_cap,
    };
    crate::exec::run(req, limits, &state.inner.tracker)
        .await
        .map(Json)
}

async fn heartbeat(State(state): State<AppState>) -> Json<Heartbeat> {
    state
        .inner
        .tracker
        .record(ActivityKind::Heartbeat, "heartbeat");
    Json(Heartbeat {
        timestamp: Timestamp::now(),
        next_stop: state.inner.tracker.next_stop(&state.inner.options.config),
    })
}

async fn logs(
    State(state): State<AppState>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<Logs>, AppError> {
    let dir = state.inner.options.paths.log_dir.clone();
    tokio::task::spawn_blocking(move || crate::logs::read(&dir, &query))
        .await
        .map_err(|e| AppError::internal("cannot read the log file", e))?
        .map(Json)
}

async fn cloud_init(State(state): State<AppState>) -> Json<CloudInit> {
    Json(state.inner.cloud_init.read().await)
}

async fn activity(State(state): State<AppState>) -> Json<Activity> {
    Json(state.inner.tracker.snapshot(&state.inner.options.config))
}
