//! Every answer the proxy makes itself instead of the server's: its status, the error
//! kind it counts and its text, in one type both engines render (the fast path as bytes
//! with `Connection: close`, hyper as a response).

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use super::body::{Body, full};
use super::metrics::{ErrorKind, HttpMetrics};

/// Why the proxy answers a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or smuggling-prone request (400), and why.
    BadRequest(&'static str),
    /// A method or transfer coding the proxy does not implement (501), and which.
    NotImplemented(&'static str),
    /// The request head is larger than `limits.max_header_size` (431).
    HeadTooLarge,
    /// The request head has more fields than `limits.max_headers` (431).
    TooManyFields,
    /// The request head took longer than `timeouts.client_header` (408).
    HeadTimeout,
    /// The client sent nothing of its request body for `timeouts.client` (408).
    BodyTimeout,
    /// No route and no default backend (503).
    NoRoute,
    /// No usable server in the backend (503).
    NoServer,
    /// The client's session server is gone and the backend rejects (`on_lost`).
    SessionLost(StatusCode),
    /// No server could be connected to (503; each failure was counted as `connect`).
    Unreachable,
    /// The server's address is not one a request can be sent to (502).
    BadServerAddress,
    /// The server broke the exchange or answered malformed (502).
    BadGateway,
    /// The server did not answer within `timeouts.server` (504).
    ServerTimeout,
}

impl Refusal {
    /// The status sent to the client.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Refusal::HeadTooLarge | Refusal::TooManyFields => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Refusal::HeadTimeout | Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::NoRoute | Refusal::NoServer | Refusal::Unreachable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::SessionLost(status) => status,
            Refusal::BadServerAddress | Refusal::BadGateway => StatusCode::BAD_GATEWAY,
            Refusal::ServerTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The error counted in `holdfast_http_errors_total`, if the refusal counts one of
    /// its own (an unreachable server's connect failures were counted as they happened).
    pub fn kind(self) -> Option<ErrorKind> {
        Some(match self {
            Refusal::BadRequest(_) | Refusal::NotImplemented(_) => ErrorKind::BadRequest,
            Refusal::HeadTooLarge | Refusal::TooManyFields => ErrorKind::HeaderTooLarge,
            Refusal::HeadTimeout => ErrorKind::HeaderTimeout,
            Refusal::BodyTimeout => ErrorKind::ClientTimeout,
            Refusal::NoRoute => ErrorKind::NoRoute,
            Refusal::NoServer => ErrorKind::NoServer,
            Refusal::SessionLost(_) => ErrorKind::SessionLost,
            Refusal::BadServerAddress => ErrorKind::Connect,
            Refusal::BadGateway => ErrorKind::Backend,
            Refusal::ServerTimeout => ErrorKind::ServerTimeout,
            Refusal::Unreachable => return None,
        })
    }

    /// Counts the refusal's error, for a refusal that is not a request's answer (a head
    /// that could not be read or framed).
    pub fn count(self, metrics: &HttpMetrics) {
        if let Some(kind) = self.kind() {
            metrics.error(kind);
        }
    }

    /// Why, in a few words.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) | Refusal::NotImplemented(why) => why,
            Refusal::HeadTooLarge => "request head too large",
            Refusal::TooManyFields => "too many header fields",
            Refusal::HeadTimeout => "request head timeout",
            Refusal::BodyTimeout => "request body timeout: the client stopped sending it",
            Refusal::NoRoute => "no backend for this request",
            Refusal::NoServer => "no server available",
            Refusal::SessionLost(_) => "session lost: its server is gone",
            Refusal::Unreachable => "server unreachable",
            Refusal::BadServerAddress => "bad server address",
            Refusal::BadGateway => "bad gateway",
            Refusal::ServerTimeout => "server timeout",
        }
    }

    /// The body text: the status line, then why.
    pub fn text(self) -> String {
        let status = self.status();
        format!(
            "{} {}\n{}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.reason()
        )
    }

    /// The whole HTTP/1.1 answer, closing the connection, appended to `out`.
    pub fn write_h1(self, out: &mut Vec<u8>) {
        let status = self.status();
        let text = self.text();
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                text.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(text.as_bytes());
    }

    /// The answer as a response for hyper (which frames it).
    pub fn response(self) -> Response<Body> {
        let mut resp = Response::new(full(self.text()));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_renderings_say_the_same() {
        let r = Refusal::BadRequest("bad Content-Length");
        let mut out = Vec::new();
        r.write_h1(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n400 Bad Request\nbad Content-Length\n"));
        assert_eq!(r.response().status(), StatusCode::BAD_REQUEST);
        assert_eq!(Refusal::Unreachable.kind(), None);
        assert_eq!(
            Refusal::SessionLost(StatusCode::GONE).status(),
            StatusCode::GONE
        );
    }
}
