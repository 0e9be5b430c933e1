//! HTTP plumbing shared by the sandbox handlers: OpenAI-style errors, query parsing
//! (`name[]=a&name[]=b`), JSON bodies and the list envelopes. Nothing outside `sandbox`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::model::Refusal;
use super::table::UnknownCursor;

/// An error answered in OpenAI's shape: `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// `type` field.
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: None,
            retry_after: None,
        }
    }

    /// A 404 `invalid_request_error`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: Some("not_found"),
            ..Self::invalid(message, None)
        }
    }

    /// A 401 for a key that is unknown, expired or absent.
    pub fn bad_key(presented: Option<&str>) -> Self {
        let message = match presented {
            None => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.".to_owned(),
            Some(k) => format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                mask(k)
            ),
        };
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: presented.map(|_| "invalid_api_key"),
            ..Self::invalid(message, None)
        }
    }

    /// A 401 for a key lacking a scope.
    pub fn missing_scope(scope: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            ..Self::invalid(
                format!(
                    "You have insufficient permissions for this operation. Missing scopes: {scope}. Check that you have the correct role in your organization (Owner), and if you're using a restricted API key, that it has the necessary scopes."
                ),
                None,
            )
        }
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "Rate limit reached for requests to this endpoint. Please try again later."
                .to_owned(),
            kind: "requests",
            param: None,
            code: Some("rate_limit_exceeded"),
            retry_after: Some(retry_after),
        }
    }

    pub fn server(status: StatusCode) -> Self {
        Self {
            status,
            message: "The server had an error while processing your request. Sorry about that!"
                .to_owned(),
            kind: "server_error",
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param,
            "code": self.code}})
    }
}

/// `sk-admin-****abcd`: how OpenAI echoes a wrong key.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    let prefix = if key.starts_with("sk-admin-") {
        "sk-admin-"
    } else if key.starts_with("sk-") {
        "sk-"
    } else {
        ""
    };
    format!("{prefix}****{tail}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => ApiError::not_found(m),
            Refusal::Invalid(m, p) => ApiError::invalid(m, p),
        }
    }
}

pub type ApiResult = Result<Json<Value>, ApiError>;

/// Parsed query string that keeps repeated keys and accepts `name[]` for `name`.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// First value of `name` (or `name[]`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name || k.strip_suffix("[]") == Some(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name` and `name[]`; comma-free, as the SDKs send one per key.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name || k.strip_suffix("[]") == Some(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An integer parameter, or 400.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::invalid(
                    format!("Invalid value for '{name}': expected an integer, got '{v}'."),
                    Some(name),
                )
            }),
        }
    }

    /// A boolean parameter (`true`/`false`), or 400.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true" | "True" | "1") => Ok(Some(true)),
            Some("false" | "False" | "0") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(
                format!("Invalid value for '{name}': expected a boolean, got '{v}'."),
                Some(name),
            )),
        }
    }

    /// `limit` within `min..=max`, defaulting to `default`.
    pub fn limit(&self, default: i64, min: i64, max: i64) -> Result<usize, ApiError> {
        let v = self.int("limit")?.unwrap_or(default);
        if v < min || v > max {
            return Err(ApiError::invalid(
                format!("Invalid 'limit': integer {v} is out of range; expected {min} to {max}."),
                Some("limit"),
            ));
        }
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// `order=asc|desc`: whether descending.
    pub fn desc(&self, default_desc: bool) -> Result<bool, ApiError> {
        match self.get("order") {
            None => Ok(default_desc),
            Some("asc") => Ok(false),
            Some("desc") => Ok(true),
            Some(v) => Err(ApiError::invalid(
                format!("Invalid 'order': '{v}'. Expected 'asc' or 'desc'."),
                Some("order"),
            )),
        }
    }
}

/// 400 for a cursor that names no object.
pub fn bad_cursor(_: UnknownCursor) -> ApiError {
    ApiError::invalid("Invalid 'after': no object with that id.", Some("after"))
}

/// Parses a JSON request body into `T`, answering malformed or incomplete bodies as OpenAI does.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(bytes).map_err(|_| {
            ApiError::invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
                None,
            )
        })?
    };
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        match text
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            Some(field) => ApiError::invalid(
                format!("Missing required parameter: '{field}'."),
                Some(field),
            ),
            None => ApiError::invalid(format!("Invalid request body: {text}."), None),
        }
    })
}

/// A legacy list: `{object, data, first_id, last_id, has_more}`.
pub fn legacy_list(data: Vec<Value>, has_more: bool) -> Json<Value> {
    let first = data.first().and_then(|v| v.get("id")).cloned();
    let last = data.last().and_then(|v| v.get("id")).cloned();
    Json(
        json!({"object": "list", "data": data, "first_id": first, "last_id": last,
        "has_more": has_more}),
    )
}

/// An RBAC list: `{object, data, has_more, next}`, `next` being the cursor to pass as `after`.
pub fn rbac_list(data: Vec<Value>, last_key: Option<String>, has_more: bool) -> Json<Value> {
    let next = if has_more { last_key } else { None };
    Json(json!({"object": "list", "data": data, "has_more": has_more, "next": next}))
}
