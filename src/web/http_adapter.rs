//! The built-in HTTP server (hyper, HTTP/1.1), for trying the application
//! out on one machine: it splits the path at the configured mount point and
//! streams the body into the application. Everything else is the
//! application's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::EXPECT;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::form::FORM_OVERHEAD;
use super::request::Request;
use super::App;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long we keep reading an unwanted body (see [`drain`]).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection until the client closes it or the server stops;
/// on stopping, the request in progress is finished first.
pub async fn serve_connection<S>(
    app: Arc<App>,
    stream: S,
    remote: String,
    mount: Arc<str>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let (app, remote, mount) = (app.clone(), remote.clone(), mount.clone());
        async move { Ok::<_, Infallible>(answer(&app, request, &remote, &mount).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);

    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = outcome {
        log::debug!("http connection ended: {e}");
    }
}

async fn answer(
    app: &App,
    request: hyper::Request<Incoming>,
    remote: &str,
    mount: &str,
) -> hyper::Response<Full<Bytes>> {
    let (parts, incoming) = request.into_parts();
    let expects_continue = parts.headers.contains_key(EXPECT);
    let limit = app.settings.max_upload_bytes + FORM_OVERHEAD;

    // The application reads the body through this handle; what it leaves
    // unread is drained from the same handle afterwards.
    let body = Arc::new(Mutex::new(incoming));
    let path = parts.uri.path();
    let below_mount = match path.strip_prefix(mount) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || mount.is_empty() => Some(rest),
        _ => None,
    };
    let request = Request {
        method: parts.method,
        mount: mount.to_string(),
        path: below_mount.unwrap_or(path).to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        remote: remote.to_string(),
        body: Box::pin(body_stream(body.clone())),
    };
    let response = match below_mount {
        Some(_) => app.handle(request).await,
        None => app.not_found(&request),
    };

    if !expects_continue {
        drain(&body, 2 * limit).await;
    }
    let mut builder = hyper::Response::builder().status(response.status);
    if let Some(headers) = builder.headers_mut() {
        *headers = response.headers;
    }
    builder.body(Full::new(response.body)).unwrap_or_else(|e| {
        log::error!("cannot build a response: {e}");
        let mut fallback = hyper::Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// The body's data frames as a stream of chunks.
fn body_stream(
    body: Arc<Mutex<Incoming>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(body, |body| async move {
        let item = {
            let mut incoming = body.lock().await;
            loop {
                match incoming.frame().await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => break Some(Ok(data)),
                        Err(_trailers) => continue,
                    },
                    Some(Err(e)) => break Some(Err(std::io::Error::other(e))),
                    None => break None,
                }
            }
        };
        item.map(|item| (item, body))
    })
}

/// Reads and drops what is left of a body we answered early (an upload
/// over the limit, say). A client still sending when the connection closes
/// sees a reset instead of our page; reading on, up to `cap` bytes and a
/// few seconds, lets it read the answer.
async fn drain(body: &Mutex<Incoming>, cap: u64) {
    let mut incoming = body.lock().await;
    if incoming.is_end_stream() {
        return;
    }
    let reading = async {
        let mut drained = 0u64;
        while let Some(Ok(frame)) = incoming.frame().await {
            drained += frame.data_ref().map_or(0, |d| d.len() as u64);
            if drained > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, reading).await;
}
