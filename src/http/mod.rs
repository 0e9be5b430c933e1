//! The HTTP surface: one file a resource (DTOs + `#[utoipa::path]` handlers + `router()`),
//! assembled here with the OpenAPI document and every middleware in one place.

pub mod access;
pub mod audit;
mod body_rules;
pub mod changes;
pub mod connections;
pub mod extract;
pub mod grants;
pub mod health;
pub mod idempotency;
pub mod inventory;
pub mod limits;
pub mod offboarding;
mod problems;
mod state;

pub use state::AppState;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ErrorCode, PROBLEM_JSON, Problem};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "openai-governor",
        description = "Access governance for OpenAI Platform organizations: connect \
            organizations with an admin key, test what the key can do, see who has access, \
            grant and revoke it. Every `/v1` route needs `Authorization: Bearer <JWT>` with the \
            scope named on the operation. Errors are RFC 9457 problem JSON with a stable `code`. \
            Any operation but `/healthz` may answer 429 (`rate_limited`, and on connection \
            tests and syncs `too_many_connection_tests` / `too_many_sync_requests`) with \
            `Retry-After` in seconds.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    // Every problem response refers to `Problem` (`problems`), no handler's attribute does;
    // and parameter types named by `value_type` only.
    components(schemas(Problem, crate::error::FieldError, changes::EventName)),
    tags(
        (name = "connections", description = "OpenAI organizations connected with an admin key"),
        (name = "inventory", description = "Each organization's users, projects, members, groups, keys and costs, synced into our store"),
        (name = "changes", description = "What each sync found added, removed or changed since the previous one: drift, or changes made through openai-governor"),
        (name = "grants", description = "Grant and revoke project access: idempotent, audited, optionally time-bound, reconciled after a crash"),
        (name = "offboarding", description = "Remove a person from one or every connected organization in one call, with their memberships, invites and optionally API keys"),
        (name = "audit", description = "The append-only audit trail: every change openai-governor made or attempted, by whom"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with the scopes an operation needs in `scope` (space-separated) \
                         or `scp` / `permissions` (arrays).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The routes and the OpenAPI document they generate, without state or middleware.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/v1/connections",
            connections::router()
                .merge(inventory::connection_routes())
                .merge(changes::connection_routes())
                .merge(access::connection_routes()),
        )
        .nest("/v1/access", access::router())
        .nest("/v1/grants", grants::routes())
        .nest("/v1/offboardings", offboarding::routes())
        .nest("/v1/syncs", inventory::sync_routes())
        .nest("/v1/changes", changes::routes())
        .nest("/v1/audit", audit::routes())
        .merge(health::router())
        .split_for_parts();
    (router, with_problems(doc))
}

/// `doc` with every operation's problem responses ([`problems`]), the rules between
/// body fields ([`body_rules`]) and the changes feed typed per kind.
fn with_problems(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    problems::document(&mut doc);
    body_rules::document(&mut doc);
    changes::typed_changes(&mut doc);
    doc
}

/// The OpenAPI document, as committed in `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

pub struct HttpSettings {
    pub request_timeout: Duration,
    /// Body size limit in bytes.
    pub body_limit_bytes: usize,
    /// CORS origins (none: CORS disabled).
    pub cors_allowed_origins: Vec<String>,
}

/// The full application: routes, docs, fallbacks and middleware.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let (routes, openapi) = routes();
    let cors = cors(&settings.cors_allowed_origins);
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetSensitiveHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // Only method, path and request id: headers (tokens) and bodies (keys) never.
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(middleware::from_fn(problem_details))
        .layer(CatchPanicLayer::custom(|_panic| {
            // The panic payload is not echoed: it could hold anything.
            Problem::new(ErrorCode::Internal, "an unexpected error occurred").into_response_with_status()
        }))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout))
        .layer(cors)
        .layer(axum::extract::DefaultBodyLimit::max(settings.body_limit_bytes));

    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), limits::limit))
        .layer(middleware::from_fn(extract::refuse_nul))
        .with_state(state)
        .layer(middleware)
}

/// CORS from the configured origins: none (no CORS headers), `*` (any origin; we never allow
/// credentials, tokens travel in `Authorization`), or an exact list.
fn cors(origins: &[String]) -> CorsLayer {
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // `Config::load` refuses origins that are not header values; skip rather than panic
        // for a configuration built by hand.
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(tower_http::cors::Any)
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            REQUEST_ID,
            idempotency::IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            REQUEST_ID,
            idempotency::REPLAYED,
            header::RETRY_AFTER,
            header::LOCATION,
        ])
        .max_age(Duration::from_secs(600))
}

async fn not_found(req: Request) -> Response {
    Problem::new(
        ErrorCode::NotFound,
        format!(
            "no route for {} {}; see /docs for the API",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response_with_status()
}

async fn method_not_allowed(req: Request) -> Response {
    Problem::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} is not allowed on {}; see /docs for the API",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response_with_status()
}

/// Makes every error response a problem document carrying the request path and id, whether a
/// handler, an extractor, a fallback or a layer (timeout, panic) produced it.
async fn problem_details(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        // A problem rendered earlier and kept: an idempotent replay of a refusal answers the
        // first answer's problem (its code and detail), not a generic one.
        None if response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes()) =>
        {
            return with_request(response, path, request_id).await;
        }
        None => {
            let code = ErrorCode::from_status(status);
            let mut p = Problem::new(code, code.title());
            p.status = status.as_u16();
            p
        }
    };
    problem.instance = Some(path);
    problem.request_id = request_id;
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// A kept problem document with this request's path and id.
async fn with_request(response: Response, path: String, request_id: Option<String>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(map) = problem.as_object_mut() {
        map.insert("instance".into(), path.into());
        map.insert("request_id".into(), request_id.into());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}
