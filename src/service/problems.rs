//! Pieces of error messages the use cases share: OpenAI's failure in words, and one invalid
//! field of a request.

use crate::domain::ValidationError;
use crate::domain::grants::RequestError;
use crate::error::{AppError, FieldError};
use crate::openai::OpenAiError;

/// OpenAI's failure in words, with its request id.
pub fn upstream_message(e: &OpenAiError) -> String {
    let id = e
        .request_id
        .as_deref()
        .map(|r| format!(" (request {r})"))
        .unwrap_or_default();
    format!("OpenAI: {}: {}{id}", e.kind.label(), e.message)
}

/// One invalid field of a request and what is wrong with it.
pub fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Invalid fields found by the domain's checks, as the caller's problem.
pub fn invalid(errors: Vec<ValidationError>) -> AppError {
    AppError::validation(
        errors
            .into_iter()
            .map(|e| field(e.field, e.message))
            .collect(),
    )
}

impl From<RequestError> for AppError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Id(id) => id.into(),
            RequestError::Fields(errors) => invalid(errors),
        }
    }
}
