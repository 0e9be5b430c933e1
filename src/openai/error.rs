//! The one error type of the OpenAI client, and the mapping from OpenAI's responses to it.
//!
//! Pure data and parsing: no I/O, nothing of our store or HTTP server. Messages never carry the
//! admin key (they are scrubbed) nor response bodies of calls that return secrets.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// What went wrong, as far as a caller needs to decide what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The admin key is invalid, revoked or absent (HTTP 401 without a scope list).
    Unauthorized,
    /// The key is valid but lacks these scopes (HTTP 401 naming `Missing scopes: ...`).
    MissingScope {
        /// Scope names as OpenAI spelled them, e.g. `api.usage.read`.
        scopes: Vec<String>,
    },
    /// HTTP 403: the key's owner may not do this.
    Forbidden,
    /// HTTP 404: the resource (or the path) does not exist.
    NotFound,
    /// HTTP 400/422 or another 4xx, or an argument rejected before sending.
    BadRequest,
    /// HTTP 409.
    Conflict,
    /// HTTP 429, after the retries allowed by the policy.
    RateLimited {
        /// What the last `Retry-After` / `Retry-After-Ms` header asked for, if anything.
        retry_after: Option<Duration>,
    },
    /// HTTP 5xx, after the retries allowed by the policy.
    Upstream,
    /// The connect or request timeout elapsed.
    Timeout,
    /// The connection failed or broke (DNS, refused, reset, TLS).
    Network,
    /// A 2xx (or error) response whose body is not what the API documents, a redirect, or a
    /// pagination cursor that does not advance.
    InvalidResponse,
    /// The answer came from an organization other than the one the client is pinned to (its
    /// `openai-organization` header): the key or base URL now reaches another organization.
    /// Never retried, never taken as an answer.
    OrganizationMismatch,
}

impl ErrorKind {
    /// A short human label for the kind.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized (invalid admin key)",
            ErrorKind::MissingScope { .. } => "admin key lacks a scope",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not found",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited { .. } => "rate limited",
            ErrorKind::Upstream => "upstream server error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Network => "network error",
            ErrorKind::InvalidResponse => "invalid response",
            ErrorKind::OrganizationMismatch => "answered for another organization",
        }
    }
}

/// An error from one client operation (after retries), with what OpenAI told us about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(self))]
pub struct OpenAiError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// HTTP status of the last response, if one was received.
    pub status: Option<u16>,
    /// OpenAI's message (or ours when there was none), on one line, without the admin key.
    pub message: String,
    /// OpenAI's error `type` (e.g. `invalid_request_error`), if given.
    pub error_type: Option<String>,
    /// OpenAI's error `code` (e.g. `invalid_api_key`), if given.
    pub code: Option<String>,
    /// OpenAI's error `param`, if given.
    pub param: Option<String>,
    /// The `x-request-id` header of the last response.
    pub request_id: Option<String>,
    /// The `openai-organization` header of the last response.
    pub organization: Option<String>,
    /// Time spent on the operation, retries and waits included.
    pub elapsed: Duration,
    /// How many HTTP attempts were made (0 when rejected before sending).
    pub attempts: u32,
}

fn render(e: &OpenAiError) -> String {
    let mut out = format!("OpenAI admin API: {}", e.kind.label());
    if let Some(status) = e.status {
        out.push_str(&format!(" (HTTP {status})"));
    }
    if let ErrorKind::MissingScope { scopes } = &e.kind
        && !scopes.is_empty()
    {
        out.push_str(&format!(" [missing: {}]", scopes.join(", ")));
    }
    if !e.message.is_empty() {
        out.push_str(": ");
        out.push_str(&e.message);
    }
    if let Some(id) = &e.request_id {
        out.push_str(&format!(" (request id {id})"));
    }
    if e.attempts > 1 {
        out.push_str(&format!(" after {} attempts", e.attempts));
    }
    out
}

impl OpenAiError {
    /// An error with no HTTP response behind it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        OpenAiError {
            kind,
            status: None,
            message: one_line(&message.into(), MAX_MESSAGE),
            error_type: None,
            code: None,
            param: None,
            request_id: None,
            organization: None,
            elapsed: Duration::ZERO,
            attempts: 0,
        }
    }

    /// True for errors that a later identical call may not repeat (429, 5xx, timeout, network).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited { .. }
                | ErrorKind::Upstream
                | ErrorKind::Timeout
                | ErrorKind::Network
        )
    }

    /// Removes every occurrence of `secret` from the message (defence in depth: OpenAI echoes
    /// only a redacted key, but a proxy might not).
    pub(crate) fn scrub(mut self, secret: &str) -> Self {
        if !secret.is_empty() && self.message.contains(secret) {
            self.message = self.message.replace(secret, "[redacted]");
        }
        self
    }
}

/// Longest message we keep from a response body.
const MAX_MESSAGE: usize = 500;

/// Collapses whitespace runs (newlines included) and truncates on a char boundary.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > max {
            break;
        }
    }
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// OpenAI's documented error body, and the `{"error": "string"}` variant seen in the wild.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        error_type: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
        #[serde(default)]
        param: Option<serde_json::Value>,
    },
    Text(String),
}

/// Fields parsed from an error response body.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ParsedError {
    pub message: String,
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

fn value_to_string(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Parses an error body leniently: JSON object, JSON string error, or any text.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> ParsedError {
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return match env.error {
            ErrorBody::Object {
                message,
                error_type,
                code,
                param,
            } => ParsedError {
                message: one_line(message.as_deref().unwrap_or(""), MAX_MESSAGE),
                error_type,
                code: value_to_string(code),
                param: value_to_string(param),
            },
            ErrorBody::Text(text) => ParsedError {
                message: one_line(&text, MAX_MESSAGE),
                ..ParsedError::default()
            },
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = one_line(&text, 200);
    let message = if text.is_empty() || text.starts_with('<') {
        // An empty body or an HTML error page from a proxy says nothing useful.
        format!("HTTP {status} with a non-JSON body")
    } else {
        format!("HTTP {status} with a non-JSON body: {text}")
    };
    ParsedError {
        message,
        ..ParsedError::default()
    }
}

/// Scope names after `Missing scopes:` in an OpenAI 401 message, if the message has that form.
pub(crate) fn missing_scopes(message: &str) -> Option<Vec<String>> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("missing scopes:")? + "missing scopes:".len();
    let mut rest = &message[start..];
    let mut scopes = Vec::new();
    // Scopes are a comma-separated list ending at the first token not followed by a comma.
    loop {
        rest = rest.trim_start();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
            .unwrap_or(rest.len());
        let token = rest[..len].trim_end_matches(['.', ':']);
        if token.is_empty() {
            break;
        }
        scopes.push(token.to_string());
        rest = &rest[len..];
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None => break,
        }
    }
    Some(scopes)
}

/// Maps an HTTP error status and its parsed body to a kind.
pub(crate) fn kind_for_status(
    status: u16,
    parsed: &ParsedError,
    retry_after: Option<Duration>,
) -> ErrorKind {
    match status {
        401 => match missing_scopes(&parsed.message) {
            Some(scopes) => ErrorKind::MissingScope { scopes },
            None => ErrorKind::Unauthorized,
        },
        403 => match missing_scopes(&parsed.message) {
            Some(scopes) => ErrorKind::MissingScope { scopes },
            None => ErrorKind::Forbidden,
        },
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        409 => ErrorKind::Conflict,
        429 => ErrorKind::RateLimited { retry_after },
        500..=599 => ErrorKind::Upstream,
        300..=399 => ErrorKind::InvalidResponse,
        _ => ErrorKind::BadRequest,
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_error_object() {
        let body = br#"{"error":{"message":"No such user: user_x","type":"invalid_request_error","param":"user_id","code":null}}"#;
        let p = parse_error_body(404, body);
        assert_eq!(p.message, "No such user: user_x");
        assert_eq!(p.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(p.param.as_deref(), Some("user_id"));
        assert_eq!(p.code, None);
        assert_eq!(kind_for_status(404, &p, None), ErrorKind::NotFound);
    }

    #[test]
    fn parses_string_error_and_non_json() {
        let p = parse_error_body(400, br#"{"error":"bad thing\nhappened"}"#);
        assert_eq!(p.message, "bad thing happened");
        let p = parse_error_body(502, b"<html><body>Bad gateway</body></html>");
        assert_eq!(p.message, "HTTP 502 with a non-JSON body");
        let p = parse_error_body(500, b"upstream   exploded");
        assert_eq!(
            p.message,
            "HTTP 500 with a non-JSON body: upstream exploded"
        );
        let p = parse_error_body(500, b"");
        assert_eq!(p.message, "HTTP 500 with a non-JSON body");
        // Valid JSON of another shape is not an error envelope.
        let p = parse_error_body(500, br#"{"detail":"x"}"#);
        assert!(p.message.starts_with("HTTP 500 with a non-JSON body"));
    }

    #[test]
    fn numeric_code_is_kept_as_text() {
        let p = parse_error_body(400, br#"{"error":{"message":"m","type":"t","code":42}}"#);
        assert_eq!(p.code.as_deref(), Some("42"));
    }

    #[test]
    fn missing_scope_messages_name_the_scopes() {
        let m = "You have insufficient permissions for this operation. Missing scopes: api.usage.read. Check that you have the correct role in your organization (Owner), and if you're using a restricted API key, that it has the necessary scopes.";
        assert_eq!(missing_scopes(m), Some(vec!["api.usage.read".to_string()]));
        let m = "Missing scopes: api.management.read, api.management.write.";
        assert_eq!(
            missing_scopes(m),
            Some(vec![
                "api.management.read".to_string(),
                "api.management.write".to_string()
            ])
        );
        let p = ParsedError {
            message: "Missing scopes: api.usage.read".into(),
            ..ParsedError::default()
        };
        assert_eq!(
            kind_for_status(401, &p, None),
            ErrorKind::MissingScope {
                scopes: vec!["api.usage.read".into()]
            }
        );
        let p = ParsedError {
            message: "Incorrect API key provided: sk-admin-****abcd.".into(),
            ..ParsedError::default()
        };
        assert_eq!(kind_for_status(401, &p, None), ErrorKind::Unauthorized);
        assert_eq!(missing_scopes("Incorrect API key provided"), None);
    }

    #[test]
    fn status_mapping() {
        let p = ParsedError::default();
        assert_eq!(kind_for_status(403, &p, None), ErrorKind::Forbidden);
        assert_eq!(kind_for_status(409, &p, None), ErrorKind::Conflict);
        assert_eq!(kind_for_status(422, &p, None), ErrorKind::BadRequest);
        assert_eq!(kind_for_status(503, &p, None), ErrorKind::Upstream);
        assert_eq!(kind_for_status(301, &p, None), ErrorKind::InvalidResponse);
        let d = Some(Duration::from_secs(2));
        assert_eq!(
            kind_for_status(429, &p, d),
            ErrorKind::RateLimited { retry_after: d }
        );
    }

    #[test]
    fn display_is_one_line_with_request_id_and_without_the_key() {
        let key = "sk-admin-SECRETSECRETSECRET";
        let mut e = OpenAiError::new(
            ErrorKind::Unauthorized,
            format!("proxy says: bad key {key}\nsecond line"),
        )
        .scrub(key);
        e.status = Some(401);
        e.request_id = Some("req_123".into());
        let shown = e.to_string();
        assert_eq!(
            shown,
            "OpenAI admin API: unauthorized (invalid admin key) (HTTP 401): proxy says: bad key [redacted] second line (request id req_123)"
        );
        assert!(!format!("{e:?}").contains(key));
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundaries() {
        let s = "é".repeat(600);
        let out = one_line(&s, 501);
        assert!(out.ends_with("..."));
        assert!(out.len() <= 504);
    }
}
