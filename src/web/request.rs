//! What the application sees of a request, whichever adapter it came
//! through: method, where it is mounted, the path below that, query, headers,
//! the client's address and the body as a stream. Reading forms is left to
//! `form`.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Method};

/// The request body: chunks as they arrive, so that an upload over the limit
/// is refused without being held in memory.
pub type Body = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// One request, as the adapters hand it to [`App::handle`](super::App::handle).
pub struct Request {
    pub method: Method,
    /// Where the application is mounted (`/ai`; CGI's `SCRIPT_NAME`), without
    /// a trailing slash; empty when mounted at the root.
    pub mount: String,
    /// The path below the mount point (`/uploads_file`; CGI's `PATH_INFO`).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: HeaderMap,
    /// The client's address, for the log.
    pub remote: String,
    pub body: Body,
}

impl Request {
    /// A request with an empty body (for tests and for GET requests).
    pub fn new(method: Method, mount: &str, path: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method,
            mount: mount.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: HeaderMap::new(),
            remote: "-".to_string(),
            body: empty_body(),
        }
    }

    /// The body as one chunk, as the FastCGI adapter receives it.
    pub fn with_body(mut self, bytes: Bytes) -> Request {
        self.body = one_chunk(bytes);
        self
    }

    /// A header's value as text, if present and readable.
    pub fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of one query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The declared body length, when the client sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.header(http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
    }
}

/// A body with no bytes.
pub fn empty_body() -> Body {
    Box::pin(futures_util::stream::empty())
}

/// A body of one chunk already in memory.
pub fn one_chunk(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        return empty_body();
    }
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}
