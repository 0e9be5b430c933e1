//! `Idempotency-Key` on writes: the first request with a key runs and its answer is stored;
//! the same key with the same request replays that answer (`Idempotent-Replayed: true`), with
//! a different request it is a 409. A request still running under the key is waited for.
//! Keys are per caller (JWT subject). 5xx answers are not stored, so a retry runs again.
//! The wait lasts `OG_GRANT_LOCK_WAIT`; a key in progress for longer than that plus
//! `OG_GRANT_LEASE` was abandoned (its process died) and runs again.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{AppError, ErrorCode, PROBLEM_JSON};

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Largest answer stored.
const MAX_ANSWER: usize = 1 << 20;

/// The stored answer.
#[derive(Serialize, Deserialize)]
struct Stored {
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

fn key_of(headers: &HeaderMap) -> Result<Option<String>, AppError> {
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

/// Runs `run` once per (caller, key): see the module docs. `operation` names the route
/// (`POST /v1/grants/{id}/revoke` with the id filled in) and `request` is the parsed body.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    operation: &str,
    request: &impl Serialize,
    run: F,
) -> Result<Response, AppError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(key) = key_of(headers)? else {
        return Ok(run().await);
    };
    let store = &state.store;
    let fp = fingerprint(operation, request);
    let settings = state.grants.settings();
    let deadline = tokio::time::Instant::now() + settings.lock_wait;
    // Longer than the first request can live: it waits at most `lock_wait` for its access,
    // then writes within its lease.
    let abandoned = chrono::Duration::from_std(settings.lock_wait + settings.lease)
        .unwrap_or(chrono::Duration::MAX);
    loop {
        let rec = store
            .idempotency_begin(&who.subject, &key, operation, &fp, Utc::now())
            .await?;
        if rec.fresh {
            break;
        }
        if rec.operation != operation || rec.fingerprint != fp {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used before with a different request; use a new key \
                 for a new request",
            ));
        }
        if let Some((status, raw)) = rec.answer {
            return Ok(replay(status, &raw));
        }
        if rec.created_at < Utc::now() - abandoned {
            // The first request's process died: let this one run.
            store.idempotency_finish(&who.subject, &key, None).await?;
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyInProgress,
                "the first request with this Idempotency-Key is still running; retry shortly",
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let response = run().await;
    let status = response.status();
    if status.is_server_error() {
        store.idempotency_finish(&who.subject, &key, None).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_ANSWER).await {
        Ok(b) => b,
        Err(e) => {
            store.idempotency_finish(&who.subject, &key, None).await?;
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
    store
        .idempotency_finish(&who.subject, &key, Some((status.as_u16(), &raw)))
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
