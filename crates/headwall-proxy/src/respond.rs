//! Responses the gateway itself produces: short plain-text reasons, no request data echoed.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};

use crate::upstream::UpstreamBody;

/// The body of every response the gateway returns: an upstream's, or one of its own.
pub(crate) type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// A response of the gateway's own with a one-line plain-text reason.
pub(crate) fn text(status: StatusCode, reason: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        reason.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An empty response (CONNECT established).
pub(crate) fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}
