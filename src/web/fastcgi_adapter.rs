//! The FastCGI adapter (tokio-fastcgi), which Apache talks to: CGI
//! parameters become the request (`SCRIPT_NAME` is the mount point,
//! `PATH_INFO` the rest, `REMOTE_ADDR` the client), and the response goes
//! back as CGI headers and body. Each connection carries one request at a
//! time, which is how Apache uses them; many connections are served at once.

use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_fastcgi::{RequestResult, Requests, Role};
use tokio_util::sync::CancellationToken;

use super::request::{one_chunk, Request};
use super::response::Response;
use super::App;

/// What we tell the web server it may open: as many connections as it likes
/// (the most the protocol can say), one request on each at a time.
const MAX_CONNECTIONS: u8 = 255;
const MAX_REQUESTS_PER_CONNECTION: u8 = 1;
/// How long a closing connection waits for the web server to close its end.
const LINGER: Duration = Duration::from_secs(2);

/// Serves the requests of one connection until the web server closes it or
/// the server stops. On stopping, a request being received or answered is
/// finished; an idle connection is closed at once.
pub async fn serve_connection<S>(
    app: Arc<App>,
    stream: S,
    mount: Arc<str>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (reader, writer) = (Arc::new(Mutex::new(Some(reader))), Arc::new(Mutex::new(Some(writer))));
    let receiving = Arc::new(AtomicBool::new(false));
    let requests = Requests::new(
        Lent { half: reader.clone(), receiving: Some(receiving.clone()) },
        Lent { half: writer.clone(), receiving: None },
        MAX_CONNECTIONS,
        MAX_REQUESTS_PER_CONNECTION,
    );
    serve_requests(app, requests, &mount, &receiving, &shutdown).await;

    let (reader, writer) = (take(&reader), take(&writer));
    if let (Some(reader), Some(writer)) = (reader, writer) {
        linger(reader, writer).await;
    }
}

async fn serve_requests<R, W>(
    app: Arc<App>,
    mut requests: Requests<R, W>,
    mount: &Arc<str>,
    receiving: &AtomicBool,
    shutdown: &CancellationToken,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    loop {
        let next = {
            let next = requests.next();
            tokio::pin!(next);
            tokio::select! {
                next = &mut next => next,
                () = shutdown.cancelled() => {
                    // Dropping the read between requests loses nothing;
                    // in the middle of one it would lose that request.
                    if !receiving.load(Ordering::SeqCst) {
                        return;
                    }
                    next.await
                }
            }
        };
        let request = match next {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                log::debug!("fastcgi connection ended: {e}");
                return;
            }
        };
        receiving.store(false, Ordering::SeqCst);

        let app = app.clone();
        let mount = mount.clone();
        let processed = request
            .process(|request| async move {
                if request.role != Role::Responder {
                    log::warn!("fastcgi: refusing a request for role {:?}", request.role);
                    return RequestResult::UnknownRole;
                }
                let ours = translate(&request, &mount);
                let head_only = ours.method == Method::HEAD;
                let response = app.handle(ours).await;
                let mut stdout = request.get_stdout();
                if let Err(e) = stdout.write(&cgi_output(&response, head_only)).await {
                    log::debug!("fastcgi: the web server went away while answering: {e}");
                }
                RequestResult::Complete(0)
            })
            .await;
        if let Err(e) = processed {
            log::debug!("fastcgi connection ended: {e}");
            return;
        }
    }
}

/// Closes a connection without losing the end of the answer. Closing a
/// socket that still holds unread bytes (a web server's extra record, say)
/// makes the kernel reset the connection, and a reset can throw away answer
/// bytes the web server has not read yet; so we send our end first, then
/// read until the web server closes its end, for a short while at most.
async fn linger<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut reader: R, mut writer: W) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if writer.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let draining = async {
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, draining).await;
}

/// Turns CGI parameters and the buffered stdin into a request.
fn translate<W: AsyncWrite + Unpin>(
    request: &tokio_fastcgi::Request<W>,
    configured_mount: &str,
) -> Request {
    let param = |name: &str| request.get_str_param(name).map(str::to_string);

    let mut headers = HeaderMap::new();
    if let Some(params) = request.str_params_iter() {
        for (name, value) in params {
            let Some(value) = value else { continue };
            // tokio-fastcgi keeps parameter names in lower case.
            let name = name.to_ascii_uppercase();
            let header = match name.as_str() {
                "CONTENT_TYPE" => Some(CONTENT_TYPE),
                "CONTENT_LENGTH" if !value.is_empty() => Some(CONTENT_LENGTH),
                _ => name
                    .strip_prefix("HTTP_")
                    .map(|h| h.to_ascii_lowercase().replace('_', "-"))
                    .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            };
            if let (Some(header), Ok(value)) = (header, HeaderValue::from_str(value)) {
                headers.append(header, value);
            }
        }
    }

    // Limitation: tokio-fastcgi receives the whole body into memory before
    // it hands us the request, so an upload over the limit is refused (413,
    // from its declared length) only once it has arrived. Acceptable because
    // Apache's LimitRequestBody caps what arrives a little above our limit;
    // a FastCGI library that streams stdin would lift it.
    let mut body = Vec::new();
    if let Err(e) = request.get_stdin().read_to_end(&mut body) {
        log::warn!("fastcgi: cannot read the request body: {e}");
    }

    let (mount, path) = split_path(
        param("SCRIPT_NAME").as_deref(),
        param("PATH_INFO").as_deref(),
        param("REQUEST_URI").as_deref(),
        configured_mount,
    );
    let method = param("REQUEST_METHOD").unwrap_or_default();
    Request {
        method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
        mount,
        path,
        query: param("QUERY_STRING").unwrap_or_default(),
        headers,
        remote: param("REMOTE_ADDR").unwrap_or_else(|| "-".into()),
        body: one_chunk(Bytes::from(body)),
    }
}

/// The mount point and the path below it. Web servers set `SCRIPT_NAME` and
/// `PATH_INFO` as CGI says; when `PATH_INFO` is missing (a proxy set up
/// without it), the request URI is split at the configured mount point.
pub fn split_path(
    script_name: Option<&str>,
    path_info: Option<&str>,
    request_uri: Option<&str>,
    configured_mount: &str,
) -> (String, String) {
    if let Some(path_info) = path_info {
        let mount = script_name.unwrap_or("").trim_end_matches('/');
        return (mount.to_string(), path_info.to_string());
    }
    let uri = request_uri.or(script_name).unwrap_or("");
    let uri = uri.split('?').next().unwrap_or("");
    match uri.strip_prefix(configured_mount) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            (configured_mount.to_string(), rest.to_string())
        }
        _ => (script_name.unwrap_or("").trim_end_matches('/').to_string(), String::new()),
    }
}

/// The response as CGI output: `Status`, the headers, a blank line, the body.
fn cgi_output(response: &Response, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + response.body.len());
    out.extend_from_slice(format!("Status: {}\r\n", response.status).as_bytes());
    for (name, value) in &response.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !response.headers.contains_key(CONTENT_LENGTH) && !head_only {
        out.extend_from_slice(format!("Content-Length: {}\r\n", response.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&response.body);
    out
}

/// One half of the connection, lent to tokio-fastcgi and taken back (see
/// [`take`]) once it is done, to close the connection properly. The reading
/// half also notes when bytes of a request have started to arrive.
struct Lent<T> {
    half: Arc<Mutex<Option<T>>>,
    receiving: Option<Arc<AtomicBool>>,
}

/// Takes a lent half back.
fn take<T>(half: &Mutex<Option<T>>) -> Option<T> {
    half.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
}

impl<T> Lent<T> {
    fn with<R>(
        &self,
        use_half: impl FnOnce(Pin<&mut T>) -> Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>>
    where
        T: Unpin,
    {
        let mut half = self.half.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match half.as_mut() {
            Some(half) => use_half(Pin::new(half)),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lent<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.with(|half| half.poll_read(cx, buf));
        if let (true, Some(receiving)) = (buf.filled().len() > before, &self.receiving) {
            receiving.store(true, Ordering::SeqCst);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lent<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with(|half| half.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|half| half.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|half| half.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_mount_point() {
        let cases = [
            // As Apache sends it when configured as shipped.
            (
                (Some("/ai"), Some("/uploads_file"), Some("/ai/uploads_file")),
                ("/ai", "/uploads_file"),
            ),
            ((Some("/ai"), Some("/"), Some("/ai/?lang=en")), ("/ai", "/")),
            ((Some("/ai"), Some(""), Some("/ai")), ("/ai", "")),
            // No PATH_INFO: split the URI at the configured mount point.
            ((Some("/ai/result/ab"), None, Some("/ai/result/ab?lang=ja")), ("/ai", "/result/ab")),
            ((None, None, Some("/ai")), ("/ai", "")),
            ((Some("/other"), None, Some("/other/x")), ("/other", "")),
        ];
        for ((script, info, uri), (mount, path)) in cases {
            let got = split_path(script, info, uri, "/ai");
            assert_eq!(got, (mount.to_string(), path.to_string()), "{script:?} {info:?} {uri:?}");
        }
    }

    #[test]
    fn cgi_output_has_status_headers_and_body() {
        let response = Response::see_other("/ai/result/x?lang=en");
        let text = String::from_utf8(cgi_output(&response, false)).unwrap();
        assert!(text.starts_with("Status: 303 See Other\r\n"), "{text}");
        assert!(text.contains("location: /ai/result/x?lang=en\r\n"), "{text}");
        assert!(
            text.ends_with("content-length: 0\r\n\r\n")
                || text.contains("Content-Length: 0\r\n\r\n")
        );
    }
}
