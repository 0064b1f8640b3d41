//! The one error type at the edge: every failure becomes a status and an
//! RFC 9457 problem+json body. 4xx details say what to fix; 5xx details say
//! nothing internal (the cause is logged instead).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::decisions::Unflushed;
use crate::outcomes::OutcomeError;
use crate::pipeline::Refused;
use crate::service::ServiceError;
use moment_store::StoreError;

/// An error answered to the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    retry_after_s: Option<u64>,
}

/// The problem+json body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says the kind of problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong and how to fix it.
    pub detail: String,
}

impl ApiError {
    /// An error with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    /// The same error, telling the caller to retry after `seconds`.
    pub fn retry_after(self, seconds: u64) -> Self {
        Self {
            retry_after_s: Some(seconds),
            ..self
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no key, or an unknown one.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: the key's role may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: no such resource for this tenant.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the resource exists already.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: well-formed but invalid.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 503: the store could not take the write; nothing changed, retrying later may work.
    /// The detail names the backend only; its own error text is logged.
    pub fn unavailable(cause: StoreError) -> Self {
        tracing::warn!(error = %cause, "store unavailable");
        let detail = match cause {
            StoreError::Unavailable { backend, .. } => {
                format!("cannot reach {backend} now; nothing was changed, retry shortly")
            }
            _ => "the customer's profile kept changing; nothing was changed, retry shortly"
                .to_owned(),
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// 500: logs `cause` and tells the caller nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed; the error is logged",
        )
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the caller is told.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Invalid(detail) => ApiError::unprocessable(detail),
            StoreError::Unavailable { .. } | StoreError::Stale => ApiError::unavailable(err),
            other => ApiError::internal(other),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(err: Refused) -> Self {
        match err {
            Refused::Invalid(detail) => ApiError::unprocessable(detail),
            Refused::NoPolicy(_) => ApiError::not_found(err.to_string()),
            Refused::Store(e) => e.into(),
        }
    }
}

impl From<OutcomeError> for ApiError {
    fn from(err: OutcomeError) -> Self {
        match err {
            OutcomeError::Invalid(detail) => ApiError::unprocessable(detail),
            OutcomeError::UnknownDecision(_) => ApiError::not_found(err.to_string()),
            OutcomeError::Unflushed(e) => e.into(),
            OutcomeError::Store(e) => e.into(),
        }
    }
}

impl From<Unflushed> for ApiError {
    fn from(err: Unflushed) -> Self {
        match err {
            Unflushed::HeldBack => ApiError::unavailable(StoreError::unavailable(
                "the decision log's store",
                "decisions are waiting to be written",
            )),
            Unflushed::WriterGone => ApiError::internal(err),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Conflict(detail) => ApiError::conflict(detail),
            ServiceError::Invalid(detail) => ApiError::unprocessable(detail),
            ServiceError::NotFound(detail) => ApiError::not_found(detail),
            ServiceError::TooLarge(detail) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, detail),
            ServiceError::Store(e) => e.into(),
            ServiceError::Load(e) => ApiError::internal(e),
            ServiceError::Crashed(e) => ApiError::internal(e),
            ServiceError::Encode(e) => ApiError::internal(e),
            ServiceError::Corrupt(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
