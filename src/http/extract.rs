//! Extractors whose rejections are problem JSON (axum's defaults answer in plain text), and
//! the [`Principal`] extractor that authenticates every `/v1` request.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{AuthError, Principal};
use crate::domain::ids::InvalidId;
use crate::error::{AppError, ErrorCode};

/// JSON body extractor and response, with problem-JSON rejections. A body whose text holds
/// a NUL character (`\u0000`) is refused: Postgres cannot store one, and SQLite would store
/// what Postgres refuses, so the backends would disagree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        if !is_json(req.headers()) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(JsonRejection::from)?;
        // serde reads a struct from a JSON array too (`[null, null]`): every body is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::new(
                ErrorCode::MalformedJson,
                "the body must be a JSON object",
            ));
        }
        if has_nul_escape(&bytes) {
            return Err(AppError::new(
                ErrorCode::ValidationFailed,
                "text in the body must not contain NUL characters (\\u0000)",
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Json(value))
    }
}

/// `application/json` or `application/<something>+json`, as `axum::Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || (sub.ends_with("+json") && !sub.contains('/')))
}

/// Whether JSON text holds the escape `\u0000` (an escaped backslash before `u0000` is text).
fn has_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Refuses a path or query holding a percent-encoded NUL (`%00`) before any extractor reads
/// it: no id, filter or cursor has one, and Postgres cannot compare text holding one.
pub async fn refuse_nul(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = req.uri();
    let has_nul = uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00"));
    if has_nul {
        return AppError::new(
            ErrorCode::InvalidParameter,
            "path and query parameters must not contain NUL characters (%00)",
        )
        .into_response();
    }
    next.run(req).await
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// serde messages quote the offending value (`invalid type: string "…"`); a misplaced secret
/// must not be echoed back, so quoted values are elided.
fn elide_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    for c in message.chars() {
        if c == '"' {
            if in_quotes {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            in_quotes = !in_quotes;
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => AppError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(e) => AppError::new(
                ErrorCode::MalformedJson,
                format!(
                    "the body is not valid JSON: {}",
                    elide_values(&e.body_text())
                ),
            ),
            JsonRejection::JsonDataError(e) => AppError::new(
                ErrorCode::MalformedJson,
                format!(
                    "the body does not have the expected shape: {}",
                    elide_values(&e.body_text())
                ),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::new(
                    ErrorCode::PayloadTooLarge,
                    "the body is larger than this service accepts",
                )
            }
            other => AppError::new(
                ErrorCode::MalformedJson,
                format!(
                    "the body could not be read: {}",
                    elide_values(&other.body_text())
                ),
            ),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        // A malformed id (`Path<ConnectionId>`, ...): its own message says which id and why
        // (`crate::domain::ids::InvalidId`), with the value cut short and no quotes to elide.
        if let PathRejection::FailedToDeserializePathParams(e) = &rejection
            && let ErrorKind::Message(message) | ErrorKind::DeserializeError { message, .. } =
                e.kind()
        {
            return AppError::new(ErrorCode::InvalidParameter, message.clone());
        }
        AppError::new(
            ErrorCode::InvalidParameter,
            format!(
                "invalid path parameter: {}",
                elide_values(&rejection.body_text())
            ),
        )
    }
}

/// A malformed id in a query or body field parsed by hand.
impl From<InvalidId> for AppError {
    fn from(err: InvalidId) -> Self {
        AppError::new(ErrorCode::InvalidParameter, err.to_string())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::new(
            ErrorCode::InvalidParameter,
            format!(
                "invalid query parameter: {}",
                elide_values(&rejection.body_text())
            ),
        )
    }
}

impl From<AuthError> for AppError {
    fn from(err: AuthError) -> Self {
        AppError::new(ErrorCode::Unauthenticated, err.to_string())
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // Already verified by the limiter (`http::limits`) when it is on.
        if let Some(super::limits::Verified(verified)) = parts.extensions.remove() {
            return verified.map_err(|e| {
                tracing::info!(reason = %e, "bearer token refused");
                AppError::from(e)
            });
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed("the Authorization header is not ASCII".into()))?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Missing.into());
        }
        let principal = state.auth.verify(token.trim()).await.map_err(|e| {
            tracing::info!(reason = %e, "bearer token refused");
            AppError::from(e)
        })?;
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::elide_values;

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not() {
        use super::has_nul_escape;
        assert!(has_nul_escape(br#"{"reason":"a\u0000b"}"#));
        assert!(!has_nul_escape(br#"{"reason":"a\\u0000b"}"#));
        assert!(has_nul_escape(br#"{"reason":"a\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"reason":"a\u00e9","t":"\""}"#));
        assert!(!has_nul_escape(br#"{"reason":"\"#));
    }

    #[test]
    fn quoted_values_are_elided() {
        assert_eq!(
            elide_values(r#"invalid type: string "sk-admin-secret", expected u32 at line 1"#),
            r#"invalid type: string "…", expected u32 at line 1"#
        );
        assert_eq!(elide_values("missing field `name`"), "missing field `name`");
    }
}

/// `?dry_run=true` on a write: answer what it would do without writing or storing anything
/// (the policy's decision and rule, and what OpenAI's current state would make of it).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DryRunParams {
    /// `true`: a dry run.
    pub dry_run: Option<bool>,
}
