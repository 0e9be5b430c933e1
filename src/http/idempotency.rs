//! `Idempotency-Key` on writes: the first request with a key runs and its answer is stored;
//! the same key with the same request replays that answer (`Idempotent-Replayed: true`), with
//! a different request it is a 409. A request still running under the key is waited for.
//! Keys are per caller (JWT subject) and remembered for `OG_IDEMPOTENCY_TTL`.
//!
//! The caller is authorized before the key is looked at, and only final answers are stored:
//! an answer that says "retry" (401, 403, 408, 429, 409 busy, 5xx) releases the key, so the
//! retry runs. The wait lasts `OG_GRANT_LOCK_WAIT`; a key in progress for longer than that
//! plus `OG_GRANT_LEASE` was abandoned (its process died) and runs again.

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::auth::{Principal, Scope};
use crate::error::{AppError, ErrorCode, PROBLEM_JSON, Problem};
use crate::service::idempotency::{Begun, IdempotencyService};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Largest answer stored.
const MAX_ANSWER: usize = 1 << 20;

/// Whether an answer is final: replaying it later is what the caller wants. An answer that
/// says to retry (or to retry with other credentials) is not.
fn is_final(response: &Response) -> bool {
    let status = response.status();
    if status.is_server_error() {
        return false;
    }
    match status {
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::REQUEST_TIMEOUT
        | StatusCode::TOO_MANY_REQUESTS => false,
        StatusCode::CONFLICT => !response.extensions().get::<Problem>().is_some_and(|p| {
            matches!(
                p.code,
                ErrorCode::AccessBusy
                    | ErrorCode::IdempotencyKeyInProgress
                    | ErrorCode::SyncInProgress
            )
        }),
        _ => true,
    }
}

/// Releases an in-progress key when dropped armed.
struct Release(Option<(IdempotencyService, String, String)>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some((keys, subject, key)) = self.0.take() {
            keys.release(subject, key);
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

/// The request's `Idempotency-Key`, checked (1–255 visible ASCII); `None` when absent. A dry
/// run keeps no record, but a malformed key is still the caller's mistake to hear about.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        ));
    }
    Ok(Some(key.to_owned()))
}

fn fingerprint(operation: &str, request: &impl Serialize) -> String {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(request).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(status: u16, raw: &str) -> Response {
    let stored: Stored = serde_json::from_str(raw).unwrap_or(Stored {
        content_type: None,
        location: None,
        body: String::new(),
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let h = response.headers_mut();
    let content_type = stored.content_type.unwrap_or_else(|| {
        if status.is_success() {
            "application/json".to_owned()
        } else {
            PROBLEM_JSON.to_owned()
        }
    });
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(l) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, l);
    }
    h.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Runs `run` once per (caller, key): see the module docs. The caller must hold `scope`;
/// `operation` names the route (`POST /v1/grants/{id}/revoke` with the id filled in) and
/// `request` is the parsed body.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    who: &Principal,
    scope: Scope,
    headers: &HeaderMap,
    operation: &str,
    request: &impl Serialize,
    run: F,
) -> Result<Response, AppError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    // Before the key: a refusal for want of scope must not be stored under it.
    who.require(scope)?;
    let Some(key) = key_of(headers)? else {
        return Ok(run().await);
    };
    let keys = &state.idempotency;
    let fp = fingerprint(operation, request);
    if let Begun::Replay(status, raw) = keys.begin(&who.subject, &key, operation, &fp).await? {
        return Ok(replay(status, &raw));
    }
    // If this future is dropped (the request timed out, the client went away), the key is
    // released so that a retry runs; the grant's own lease covers the write itself.
    let mut pending = Release(Some((keys.clone(), who.subject.clone(), key.clone())));
    let response = run().await;
    pending.0 = None;
    let status = response.status();
    if !is_final(&response) {
        keys.finish(&who.subject, &key, None).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_ANSWER).await {
        Ok(b) => b,
        Err(e) => {
            keys.finish(&who.subject, &key, None).await?;
            return Err(AppError::internal(e));
        }
    };
    let text = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let stored = Stored {
        content_type: text(header::CONTENT_TYPE),
        location: text(header::LOCATION),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let raw = serde_json::to_string(&stored).map_err(AppError::internal)?;
    keys.finish(&who.subject, &key, Some((status.as_u16(), &raw)))
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
