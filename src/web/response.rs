//! What the application answers: status, headers and the whole body, plus
//! what the request log line needs to know (login name, top-1 class). The
//! adapters turn it into HTTP or CGI output.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, StatusCode};

/// One response. Bodies are small pages or one stored photo, so they are
/// held whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// For the request's log line; never sent.
    pub log: LogFields,
}

/// What a handler learnt that the request's log line should show.
#[derive(Debug, Default, Clone)]
pub struct LogFields {
    pub login: Option<String>,
    pub top1: Option<String>,
}

impl Response {
    /// A response with a body and its media type.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Response { status, headers, body: body.into(), log: LogFields::default() }
    }

    /// An HTML page.
    pub fn html(status: StatusCode, page: String) -> Response {
        Response::new(status, "text/html; charset=utf-8", page).no_store()
    }

    /// Plain text.
    pub fn text(status: StatusCode, text: String) -> Response {
        Response::new(status, "text/plain; charset=utf-8", text)
    }

    /// A JSON document.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
        // Serialising our own plain structs cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::new(status, "application/json", body)
    }

    /// `303 See Other` to `location` (a path that includes the mount point).
    pub fn see_other(location: &str) -> Response {
        let mut response = Response::new(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
        if let Ok(value) = HeaderValue::from_str(location) {
            response.headers.insert(LOCATION, value);
        }
        response
    }

    /// Adds or replaces a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Response {
        self.headers.insert(name, value);
        self
    }

    /// Pages carry login names and results: browsers and proxies keep no copy.
    pub fn no_store(self) -> Response {
        self.with_header(CACHE_CONTROL, HeaderValue::from_static("no-store"))
    }

    /// Records the login name for the log line.
    pub fn logged_as(mut self, login: &str) -> Response {
        self.log.login = Some(login.to_string());
        self
    }
}
