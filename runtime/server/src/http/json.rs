//! A JSON body extractor whose rejections are problem+json.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like [`axum::Json`], but a bad body is answered with a [`ApiError`]:
/// 400 for malformed JSON, 422 naming the field for wrong types, missing or
/// unknown fields, 413 for a body over the limit, 415 without a JSON content
/// type. Every body of the API is an object: an array is 422, where serde
/// alone would read it as the struct's fields in order.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        decode(req, state).await.map(Self)
    }
}

/// Like [`ApiJson`], but a `text/plain` body is read as JSON too: browsers'
/// beacons (`navigator.sendBeacon` with a string) can send only that type
/// without a CORS preflight. Used by `POST /v1/outcomes` alone.
pub struct BeaconJson<T>(pub T);

impl<S, T> FromRequest<S> for BeaconJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) && !text_plain(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with `Content-Type: application/json` \
                 (or `text/plain`, as a beacon does)",
            ));
        }
        decode(req, state).await.map(Self)
    }
}

/// Reads and parses a JSON object body of either extractor.
async fn decode<S, T>(req: Request, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let bytes =
        Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is larger than this route accepts",
                ),
                _ => ApiError::bad_request(format!(
                    "the body could not be read: {}",
                    rejection.body_text()
                )),
            })?;
    let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes).map_err(|r| reject(&r))?;
    let json_whitespace = |b: &&u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    if bytes.iter().find(|b| !json_whitespace(b)) == Some(&b'[') {
        return Err(ApiError::unprocessable(
            "the body must be a JSON object, not an array",
        ));
    }
    Ok(value)
}

/// `text/plain`, with any charset.
fn text_plain(headers: &HeaderMap) -> bool {
    essence(headers).is_some_and(|e| e == "text/plain")
}

/// `application/json`, or another `application/…+json` type.
pub fn json_content_type(headers: &HeaderMap) -> bool {
    essence(headers).is_some_and(|essence| {
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// The content type without its parameters, in lower case.
fn essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn reject(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field path and what was expected.
            let cause = std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_default();
            ApiError::unprocessable(format!(
                "the body does not match the expected shape: {cause}"
            ))
        }
        JsonRejection::JsonSyntaxError(e) => {
            let cause = std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_default();
            ApiError::bad_request(format!("the body is not valid JSON: {cause}"))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than this route accepts",
        ),
        other => {
            ApiError::bad_request(format!("the body could not be read: {}", other.body_text()))
        }
    }
}
