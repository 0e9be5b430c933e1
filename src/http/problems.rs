//! Every problem an operation can answer, documented in the OpenAPI document from one table:
//! the statuses, each with the `code`s it may carry as an enum, so a generated client knows
//! them all and a fuzzer can check that nothing else comes back.
//!
//! An operation's codes are its own ([`OWN`]) plus those its shape implies: every route may
//! time out or fail inside (`request_timeout`, `internal`); every `/v1` route authenticates,
//! authorizes, is rate limited and reads the store; parameters can be malformed; a JSON body
//! can be malformed, too large or of another media type.
//!
//! The same pass states what utoipa cannot derive about inputs: optional parameters are not
//! `null`, free-text parameters and body fields hold no NUL (refused at the edge), and every
//! response has a description (generators refuse the document otherwise).

use std::collections::BTreeMap;

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

use crate::error::ErrorCode::{self, *};

/// The codes particular to each operation (by `operationId`).
const OWN: &[(&str, &[ErrorCode])] = &[
    ("healthz", &[]),
    ("readyz", &[ServiceUnavailable]),
    ("get_person_access", &[]),
    ("list_permission_holders", &[]),
    ("list_audit", &[]),
    ("export_audit", &[]),
    ("list_changes", &[ConnectionNotFound]),
    ("list_connections", &[]),
    (
        "create_connection",
        &[ValidationFailed, BaseUrlNotAllowed, ConnectionNameTaken],
    ),
    (
        "test_admin_key",
        &[ValidationFailed, BaseUrlNotAllowed, TooManyConnectionTests],
    ),
    ("get_connection", &[ConnectionNotFound]),
    (
        "delete_connection",
        &[
            ConnectionNotFound,
            ConnectionHasLiveGrants,
            AccessBusy,
            EncryptionKeyUnavailable,
            UpstreamUnavailable,
            UpstreamRefused,
        ],
    ),
    (
        "update_connection",
        &[
            ConnectionNotFound,
            ValidationFailed,
            BaseUrlNotAllowed,
            ConnectionNameTaken,
            OrganizationPinned,
            AdminKeyRequired,
        ],
    ),
    ("list_connection_changes", &[ConnectionNotFound]),
    ("export_inventory", &[ConnectionNotFound]),
    // `not_found`: an unknown kind.
    ("list_inventory", &[ConnectionNotFound, NotFound]),
    ("list_connection_owners", &[ConnectionNotFound]),
    ("get_project_access", &[ConnectionNotFound, ProjectNotFound]),
    ("list_syncs", &[ConnectionNotFound]),
    (
        "start_sync",
        &[
            ConnectionNotFound,
            SyncInProgress,
            TooManySyncRequests,
            ConnectionTestRequired,
            EncryptionKeyUnavailable,
        ],
    ),
    (
        "test_connection",
        &[
            ConnectionNotFound,
            TooManyConnectionTests,
            EncryptionKeyUnavailable,
        ],
    ),
    ("list_grants", &[]),
    (
        "create_grant",
        &[
            ConnectionNotFound,
            ProjectNotFound,
            // A group or role that does not exist.
            NotFound,
            ValidationFailed,
            EmailRequired,
            NotAMember,
            ProjectArchived,
            OrgOwner,
            LastOwner,
            DefaultProject,
            InvitePending,
            ScimManaged,
            GroupHasAccess,
            AccessBusy,
            IdempotencyKeyReused,
            IdempotencyKeyInProgress,
            ConnectionTestRequired,
            OrganizationMismatch,
            EncryptionKeyUnavailable,
            UpstreamRefused,
            UpstreamUnavailable,
        ],
    ),
    ("get_grant", &[GrantNotFound]),
    (
        "update_grant",
        &[
            GrantNotFound,
            GrantNotLive,
            ValidationFailed,
            AccessBusy,
            IdempotencyKeyReused,
            IdempotencyKeyInProgress,
        ],
    ),
    (
        "revoke_grant",
        &[
            GrantNotFound,
            GrantNotLive,
            ValidationFailed,
            OrgOwner,
            LastOwner,
            DefaultProject,
            ScimManaged,
            AccessBusy,
            IdempotencyKeyReused,
            IdempotencyKeyInProgress,
            ConnectionTestRequired,
            OrganizationMismatch,
            EncryptionKeyUnavailable,
            UpstreamRefused,
            UpstreamUnavailable,
        ],
    ),
    (
        "create_offboarding",
        &[
            ConnectionNotFound,
            ValidationFailed,
            OrgOwner,
            LastOwner,
            AccessBusy,
            IdempotencyKeyReused,
            IdempotencyKeyInProgress,
            ConnectionTestRequired,
            OrganizationMismatch,
            EncryptionKeyUnavailable,
            UpstreamRefused,
            UpstreamUnavailable,
        ],
    ),
    ("get_offboarding", &[NotFound]),
    ("get_sync", &[SyncNotFound]),
];

/// Any route.
const EVERY_ROUTE: &[ErrorCode] = &[RequestTimeout, Internal];
/// Any `/v1` route: the token, the scope and the policy, the caller's rate, the store.
const EVERY_V1_ROUTE: &[ErrorCode] = &[
    Unauthenticated,
    InsufficientScope,
    PolicyDenied,
    RateLimited,
    ServiceUnavailable,
];
/// A route with path or query parameters.
const WITH_PARAMETERS: &[ErrorCode] = &[InvalidParameter];
/// A route with a JSON body.
const WITH_BODY: &[ErrorCode] = &[
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed,
];

/// The codes `operation_id` (served at `path`) can answer, by status.
fn codes(path: &str, operation_id: &str, op: &Operation) -> Option<BTreeMap<u16, Vec<ErrorCode>>> {
    let own = OWN.iter().find(|(id, _)| *id == operation_id)?.1;
    let mut all: Vec<ErrorCode> = EVERY_ROUTE.to_vec();
    if path.starts_with("/v1/") || path == "/v1" {
        all.extend_from_slice(EVERY_V1_ROUTE);
    }
    if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        all.extend_from_slice(WITH_PARAMETERS);
    }
    if op.request_body.is_some() {
        all.extend_from_slice(WITH_BODY);
    }
    all.extend_from_slice(own);
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in all {
        let codes = by_status.entry(code.status().as_u16()).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Some(by_status)
}

/// The problem responses of every operation, put into `doc`. Panics on an operation missing
/// from [`OWN`]: a new route must say what it can answer.
pub fn document(doc: &mut OpenApi) {
    no_nul_in_bodies(doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            parameter_schemas(op);
            described_responses(op);
            let id = op.operation_id.clone().unwrap_or_default();
            let Some(by_status) = codes(path, &id, op) else {
                panic!("{id} ({path}) is not in http::problems::OWN");
            };
            for (status, codes) in by_status {
                op.responses
                    .responses
                    .insert(status.to_string(), RefOr::T(response(&codes)));
            }
        }
    }
}

/// An optional header comes out of utoipa as `type: [string, null]`; HTTP has no null
/// header (or path or query value): absent is how it is left out. And a free-text parameter
/// never holds NUL (`%00` is refused at the edge, `extract::refuse_nul`): say so.
fn parameter_schemas(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        let RefOr::T(p) = p else { continue };
        let Some(RefOr::T(Schema::Object(object))) = &mut p.schema else {
            continue;
        };
        if let SchemaType::Array(types) = &mut object.schema_type {
            types.retain(|t| *t != Type::Null);
            if let [only] = types.as_slice() {
                object.schema_type = SchemaType::Type(only.clone());
            }
        }
        let free_text = object.schema_type == SchemaType::Type(Type::String)
            && object.format.is_none()
            && object.enum_values.is_none()
            && object.pattern.is_none();
        if free_text {
            object.pattern = Some(NO_NUL.to_owned());
        }
    }
}

/// Free-text fields of request bodies hold no NUL either (`extract::Json` refuses one).
fn no_nul_in_bodies(doc: &mut OpenApi) {
    let mut inputs = Vec::new();
    for item in doc.paths.paths.values() {
        for op in [&item.post, &item.put, &item.patch].into_iter().flatten() {
            let Some(RefOr::T(body)) = &op.request_body else {
                continue;
            };
            for content in body.content.values() {
                if let RefOr::T(content) = content
                    && let Some(RefOr::Ref(r)) = &content.schema
                {
                    inputs.extend(r.ref_location.rsplit('/').next().map(str::to_owned));
                }
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in inputs {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) else {
            continue;
        };
        for property in object.properties.values_mut() {
            let RefOr::T(Schema::Object(p)) = property else {
                continue;
            };
            let text = match &p.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => types.contains(&Type::String),
                _ => false,
            };
            if text && p.format.is_none() && p.enum_values.is_none() && p.pattern.is_none() {
                p.pattern = Some(NO_NUL.to_owned());
            }
        }
    }
}

/// A string without NUL characters.
const NO_NUL: &str = "^[^\\x00]*$";

/// OpenAPI requires a description on every response; one a handler left without gets its
/// status's reason phrase (generators refuse the document otherwise).
fn described_responses(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.trim().is_empty()
        {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason());
            response.description = reason.unwrap_or("Response").to_owned();
        }
    }
}

/// One status's problem response: the `Problem` schema with `code` narrowed to `codes`.
fn response(codes: &[ErrorCode]) -> Response {
    let described: Vec<String> = codes
        .iter()
        .map(|c| format!("`{}` ({})", c.as_str(), c.title()))
        .collect();
    let narrowed = ObjectBuilder::new().property(
        "code",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(codes.iter().map(|c| c.as_str()))),
    );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(narrowed);
    ResponseBuilder::new()
        .description(format!("Problem: {}.", described.join(", ")))
        .content(
            crate::error::PROBLEM_JSON,
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A string schema allowing only `names`, for parameters parsed by hand from a fixed set.
pub fn string_enum<S: Into<String>>(
    names: impl IntoIterator<Item = S>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let names: Vec<String> = names.into_iter().map(Into::into).collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .into()
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};

    use super::*;

    #[test]
    fn every_operation_is_in_the_table_and_the_table_names_only_operations() {
        let doc = super::super::openapi();
        let mut ids: Vec<String> = Vec::new();
        for item in doc.paths.paths.values() {
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                ids.extend(op.operation_id.clone());
            }
        }
        for (id, _) in OWN {
            assert!(
                ids.iter().any(|i| i == id),
                "{id} is in OWN but not an operation"
            );
        }
        assert_eq!(ids.len(), OWN.len(), "one OWN entry per operation");
    }

    #[test]
    fn statuses_follow_the_codes() {
        let op = OperationBuilder::new()
            .parameter(
                ParameterBuilder::new()
                    .name("grant_id")
                    .parameter_in(ParameterIn::Path),
            )
            .build();
        let by_status = codes("/v1/grants/{grant_id}", "get_grant", &op).expect("known");
        assert_eq!(by_status[&404], vec![GrantNotFound]);
        assert_eq!(by_status[&400], vec![InvalidParameter]);
        assert_eq!(by_status[&403], vec![InsufficientScope, PolicyDenied]);
        assert!(!by_status.contains_key(&415), "no body, no 415");
        let health = codes("/healthz", "healthz", &OperationBuilder::new().build()).expect("known");
        assert!(!health.contains_key(&401), "no token on /healthz");
    }
}
