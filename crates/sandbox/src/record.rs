//! An opt-in recorder of the sandbox's `/v1` answers, so contract tests can check each against
//! OpenAI's published schemas (`spec/openai-admin-api/openapi.admin.yaml`; the tests bring the
//! validator). [`super::SandboxState::start_recording`] turns it on with a byte budget; answers
//! beyond it are counted, not kept. Depends only on axum and the sandbox's state.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::SandboxState;

/// One answer given on `/v1`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedResponse {
    pub method: String,
    /// The spec's path template without `/v1`, e.g. `/organization/projects/{project_id}/users`.
    pub template: String,
    /// The concrete path and query, without `/v1`.
    pub path: String,
    pub status: u16,
    pub body: String,
    /// The body was deliberately truncated by the `malformed_rate` fault (not a contract breach).
    pub malformed_by_fault: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    pub responses: Vec<RecordedResponse>,
    /// Answers not kept because the byte budget was spent.
    pub dropped: u64,
}

#[derive(Debug, Default)]
pub(super) struct Recorder {
    pub(super) recording: Recording,
    pub(super) budget_left: usize,
}

/// Marker the fault middleware puts on an answer whose body it truncated.
#[derive(Debug, Clone, Copy)]
pub(super) struct MalformedByFault;

/// Middleware on every matched `/v1` route (outermost, so auth errors and injected faults are
/// recorded too). Costs nothing while recording is off.
pub(super) async fn record(
    State(state): State<SandboxState>,
    req: Request,
    next: Next,
) -> Response {
    if !state.is_recording() {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let template = template
        .strip_prefix("/v1")
        .map(str::to_owned)
        .unwrap_or(template);
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let path = path.strip_prefix("/v1").map(str::to_owned).unwrap_or(path);

    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            // The body failed mid-stream: record what the client would see, an empty body.
            tracing::debug!(error = %e, "sandbox recorder could not read a body");
            axum::body::Bytes::new()
        }
    };
    let entry = RecordedResponse {
        method,
        template,
        path,
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        malformed_by_fault: parts.extensions.get::<MalformedByFault>().is_some(),
    };
    state.push_recorded(entry);
    Response::from_parts(parts, Body::from(bytes))
}
