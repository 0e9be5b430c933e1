//! Our own contract, checked from the inside: every answer the service gives in a test must
//! match the committed `openapi/openapi.json` (a documented status for the operation, the
//! documented media type, a body valid by its schema, problem `code`s among those listed for
//! that status). `TestApp` records what it served and checks it when dropped, so the whole
//! suite's error paths keep the document honest; the fuzzing stage (`tests/fuzz`) does the
//! same from the outside with generated requests.

use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;

use crate::spec::Spec;

/// The committed document, relative to the crate root.
const DOCUMENT: &str = "openapi/openapi.json";

/// Media types recorded with their body (the others, NDJSON streams, only by status).
const JSON_TYPES: [&str; 2] = ["application/json", "application/problem+json"];

/// Our document, loaded and compiled once.
pub fn own_spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOCUMENT);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        Spec::from_openapi(&doc, None)
    })
}

/// One answer as served.
struct Answer {
    method: String,
    path: String,
    status: u16,
    media_type: Option<String>,
    body: Option<Vec<u8>>,
}

/// What a service answered, recorded by the layer [`Served::wrap`] puts around its router.
#[derive(Clone, Default)]
pub struct Served(Arc<Mutex<Vec<Answer>>>);

impl Served {
    /// `router` with every answer recorded here.
    pub fn wrap(&self, router: Router) -> Router {
        let served = self.clone();
        router.layer(middleware::from_fn(move |req: Request, next: Next| {
            let served = served.clone();
            async move { served.record(req, next).await }
        }))
    }

    async fn record(&self, req: Request, next: Next) -> Response {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let response = next.run(req).await;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let status = response.status().as_u16();
        let is_json = media_type
            .as_deref()
            .is_some_and(|t| JSON_TYPES.contains(&t));
        let (response, body) = if is_json {
            let (parts, body) = response.into_parts();
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => {
                    let kept = bytes.to_vec();
                    (Response::from_parts(parts, Body::from(bytes)), Some(kept))
                }
                // The body failed mid-way: the client sees the failure, nothing to check.
                Err(_) => (Response::from_parts(parts, Body::empty()), None),
            }
        } else {
            (response, None)
        };
        if let Ok(mut answers) = self.0.lock() {
            answers.push(Answer {
                method,
                path,
                status,
                media_type,
                body,
            });
        }
        response
    }

    /// Every way the recorded answers break the document; how many were checked.
    pub fn violations(&self) -> (usize, Vec<String>) {
        let answers = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let spec = own_spec();
        let mut violations = Vec::new();
        let mut checked = 0;
        for a in &answers {
            // Unknown routes (a test's deliberate 404 or 405) belong to no operation.
            let Some(template) = spec.template_for(&a.method, &a.path) else {
                continue;
            };
            checked += 1;
            let Some(documented) = spec.documented(&a.method, template, a.status) else {
                violations.push(format!(
                    "{} {} -> {}: status not documented for {template}",
                    a.method, a.path, a.status
                ));
                continue;
            };
            if documented != a.media_type.as_deref() {
                violations.push(format!(
                    "{} {} -> {}: media type {:?}, documented {:?}",
                    a.method, a.path, a.status, a.media_type, documented
                ));
            }
            let Some(bytes) = &a.body else { continue };
            let body = match serde_json::from_slice::<Value>(bytes) {
                Ok(body) => body,
                Err(e) => {
                    violations.push(format!(
                        "{} {} -> {}: body is not JSON ({e})",
                        a.method, a.path, a.status
                    ));
                    continue;
                }
            };
            if let Err(errors) = spec.validate(&a.method, template, &a.path, a.status, &body) {
                violations.extend(errors.into_iter().map(|v| v.to_string()));
            }
        }
        (checked, violations)
    }

    /// Panics with every violation.
    pub fn assert_conforms(&self) {
        let (_, violations) = self.violations();
        assert!(
            violations.is_empty(),
            "the service answered outside openapi/openapi.json ({} violations):\n{}",
            violations.len(),
            violations.join("\n")
        );
    }
}
