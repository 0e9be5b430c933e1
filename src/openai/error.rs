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
    /// The answer's `openai-organization` is not the pinned one: the key or base URL now
    /// reaches another organization. Never retried, never taken as an answer.
    OrganizationMismatch,
}

impl ErrorKind {
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
    pub kind: ErrorKind,
    /// HTTP status of the last response, if one was received.
    pub status: Option<u16>,
    /// OpenAI's message (or ours when there was none), on one line, without the admin key.
    pub message: String,
    /// OpenAI's error `type` (e.g. `invalid_request_error`), if given.
    pub error_type: Option<String>,
    /// OpenAI's error `code` (e.g. `invalid_api_key`), if given.
    pub code: Option<String>,
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
    /// An error with no HTTP response behind it. The message is kept whole until
    /// [`OpenAiError::scrub`] has removed the key from it; only then is it truncated.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        OpenAiError {
            kind,
            status: None,
            message: one_line(&message.into(), MAX_UNSCRUBBED),
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

    /// Removes the admin key, any token holding a long run of it and any other `sk-...` key
    /// from every text sent back (message, `type`, `code`, `param`, echoed headers), then
    /// truncates: scrubbing first, so a cut never leaves part of a key behind. OpenAI's masked
    /// `sk-admin-****abcd` survives (harmless and useful).
    pub(crate) fn scrub(mut self, secret: &str) -> Self {
        let clean = |s: &str, max: usize| one_line(&scrub_text(s, secret), max);
        self.message = clean(&self.message, MAX_MESSAGE);
        for field in [
            &mut self.error_type,
            &mut self.code,
            &mut self.param,
            &mut self.request_id,
            &mut self.organization,
        ] {
            if let Some(text) = field.as_mut() {
                *text = clean(text, MAX_FIELD);
            }
        }
        self
    }
}

/// Shortest run of the key's secret part that counts as an echo of it.
const MIN_ECHO: usize = 8;

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The key without its well-known prefix (`sk-admin-`, `sk-`): the part that must not leak.
fn secret_part(secret: &str) -> &str {
    secret
        .strip_prefix("sk-admin-")
        .or_else(|| secret.strip_prefix("sk-"))
        .unwrap_or(secret)
}

/// `sk-`, an optional lowercase kind (`admin-`, `proj-`, `svcacct-`), then 4+ key characters.
fn looks_like_a_key(token: &str) -> bool {
    let Some(rest) = token.strip_prefix("sk-") else {
        return false;
    };
    let body = match rest.split_once('-') {
        Some((kind, body)) if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase()) => {
            body
        }
        _ => rest,
    };
    body.len() >= 4
}

/// `text` with the key, runs of at least [`MIN_ECHO`] characters of its secret part, and
/// key-like tokens replaced by `[redacted]`.
pub(crate) fn scrub_text(text: &str, secret: &str) -> String {
    let text = if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    };
    let secret = secret_part(secret);
    // A secret part shorter than MIN_ECHO can only be matched whole.
    let window = MIN_ECHO.min(secret.len());
    let windows: std::collections::HashSet<&[u8]> = if window == 0 {
        Default::default()
    } else {
        secret.as_bytes().windows(window).collect()
    };
    let echoes = |token: &str| {
        window > 0
            && token.len() >= window
            && token
                .as_bytes()
                .windows(window)
                .any(|w| windows.contains(w))
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(is_key_char) {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let len = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
        let token = &after[..len];
        if looks_like_a_key(token) || echoes(token) {
            out.push_str("[redacted]");
        } else {
            out.push_str(token);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Longest text kept before scrubbing (a bound on memory, far beyond what is shown). The cut
/// backs off to before a run of key characters, so it cannot split a key either.
const MAX_UNSCRUBBED: usize = 16 * 1024;

/// Longest `type`, `code`, `param` or header text kept.
const MAX_FIELD: usize = 200;

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
        if max >= MAX_UNSCRUBBED {
            // Not scrubbed yet: never leave the head of a key-like run at the cut.
            let head = out[..cut].trim_end_matches(is_key_char).len();
            cut = head;
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

/// Lenient: a JSON error object, a JSON string error or any text; kept whole until scrubbed.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> ParsedError {
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return match env.error {
            ErrorBody::Object {
                message,
                error_type,
                code,
                param,
            } => ParsedError {
                message: one_line(message.as_deref().unwrap_or(""), MAX_UNSCRUBBED),
                error_type: error_type.map(|t| one_line(&t, MAX_UNSCRUBBED)),
                code: value_to_string(code).map(|c| one_line(&c, MAX_UNSCRUBBED)),
                param: value_to_string(param).map(|p| one_line(&p, MAX_UNSCRUBBED)),
            },
            ErrorBody::Text(text) => ParsedError {
                message: one_line(&text, MAX_UNSCRUBBED),
                ..ParsedError::default()
            },
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = one_line(&text, MAX_UNSCRUBBED);
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

    const KEY: &str = "sk-admin-Q7fZk2LmP9xV4tR8wY1nB6cD3hJ5sG0aE2uI7oK9mN4bV6cX8zL1qW3eR5tY7uI9";

    #[test]
    fn scrub_comes_before_truncation_so_a_key_cut_in_half_does_not_survive() {
        // The key straddles the 500-character cut: truncating first would keep its head.
        let message = format!("{} {KEY} tail", "x".repeat(480));
        let body = serde_json::json!({"error": {"message": message, "type": KEY, "code": format!("bad {KEY}"), "param": KEY}});
        let p = parse_error_body(401, body.to_string().as_bytes());
        let mut e = OpenAiError::new(kind_for_status(401, &p, None), "");
        e.message = p.message;
        e.error_type = p.error_type;
        e.code = p.code;
        e.param = p.param;
        let e = e.scrub(KEY);
        let shown = format!("{e} {e:?}");
        for part in [&KEY[..20], &KEY[9..21], &KEY[KEY.len() - 12..]] {
            assert!(!shown.contains(part), "{part} leaked: {shown}");
        }
        assert!(e.message.len() <= MAX_MESSAGE + 3, "{}", e.message.len());
        assert_eq!(e.error_type.as_deref(), Some("[redacted]"));
        assert_eq!(e.code.as_deref(), Some("bad [redacted]"));
        assert_eq!(e.param.as_deref(), Some("[redacted]"));
    }

    #[test]
    fn partial_echoes_are_scrubbed() {
        let cases = [
            // A proxy that cut the key short.
            (format!("bad key {}", &KEY[..30]), "bad key [redacted]"),
            // Its tail only, or a piece of the middle.
            (format!("key ...{}", &KEY[40..]), "key ...[redacted]"),
            (format!("x{}y", &KEY[20..32]), "[redacted]"),
            // Another key altogether.
            (
                "also sk-admin-AAAAbbbbCCCC and sk-proj-zzzz9".to_owned(),
                "also [redacted] and [redacted]",
            ),
            // Whole key glued into a URL.
            (format!("Bearer%20{KEY}&x=1"), "Bearer%20[redacted]&x=1"),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_text(&input, KEY), want, "{input}");
        }
    }

    #[test]
    fn scrub_keeps_what_is_harmless() {
        for text in [
            "Incorrect API key provided: sk-admin-****uI9. You can find your API key at https://platform.openai.com/account/api-keys.",
            "Missing scopes: api.management.write. Check the task-force role owner.",
            "No such project: proj_abc. sk- is a prefix.",
        ] {
            assert_eq!(scrub_text(text, KEY), text);
        }
        // A short key (tests) is still removed whole.
        assert_eq!(scrub_text("k=sk-admin-ab.", "sk-admin-ab"), "k=[redacted].");
        assert_eq!(scrub_text("plain", ""), "plain");
    }

    #[test]
    fn an_unscrubbed_cut_never_splits_a_key_like_run() {
        let s = format!("{} {KEY}", "y".repeat(MAX_UNSCRUBBED - 20));
        let out = one_line(&s, MAX_UNSCRUBBED);
        assert!(out.ends_with(" ..."), "{}", &out[out.len() - 30..]);
        assert!(!out.contains("sk-admin"));
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundaries() {
        let s = "é".repeat(600);
        let out = one_line(&s, 501);
        assert!(out.ends_with("..."));
        assert!(out.len() <= 504);
    }
}
