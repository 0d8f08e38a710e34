//! Reading what a form sends: the small URL-encoded login form, and the
//! multipart upload, streamed through `multer` with size limits so that an
//! oversized upload is refused as soon as it passes the limit. What the
//! fields mean is left to the pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::CONTENT_TYPE;
use multer::{Constraints, Multipart, SizeLimit};

use super::error::RequestError;
use super::login::LoginProblem;
use super::request::{empty_body, Body, Request};

/// Room for the multipart boundaries, part headers and the small fields
/// beside the file: the whole body may exceed the file limit by this much.
pub const FORM_OVERHEAD: u64 = 64 * 1024;

/// The most the login name and language fields may hold. Other fields are
/// read and ignored, bounded only by the whole body's limit.
const TEXT_FIELD_LIMIT: u64 = 4 * 1024;

/// The fields of a URL-encoded form.
#[derive(Debug, Default)]
pub struct UrlForm {
    fields: Vec<(String, String)>,
}

impl UrlForm {
    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// What the upload form sent.
#[derive(Debug, Default)]
pub struct UploadForm {
    pub login: Option<String>,
    pub lang: Option<String>,
    pub file: Option<UploadedFile>,
}

/// The file part of an upload.
#[derive(Debug)]
pub struct UploadedFile {
    /// The name the browser gave, as sent (it may be a path, empty or a lie).
    pub name: Option<String>,
    pub bytes: Bytes,
}

/// Reads an `application/x-www-form-urlencoded` body of at most `limit` bytes.
pub async fn read_url_form(request: &mut Request, limit: u64) -> Result<UrlForm, RequestError> {
    let content_type = request.header(CONTENT_TYPE).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(RequestError::NotAForm);
    }
    if request.content_length().is_some_and(|length| length > limit) {
        return Err(RequestError::TooBig { limit });
    }

    let mut body = std::mem::replace(&mut request.body, empty_body());
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RequestError::CutOff(e.to_string()))?;
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(RequestError::TooBig { limit });
        }
        bytes.extend_from_slice(&chunk);
    }

    let fields = form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned()));
    Ok(UrlForm { fields: fields.collect() })
}

/// Reads a `multipart/form-data` upload: the fields `uid`, `lang` and
/// `file`, in any order. The file may hold at most `max_file_bytes`.
pub async fn read_upload(
    request: &mut Request,
    max_file_bytes: u64,
) -> Result<UploadForm, RequestError> {
    let content_type = request.header(CONTENT_TYPE).unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| RequestError::NotMultipart)?;
    let whole_limit = max_file_bytes + FORM_OVERHEAD;
    if request.content_length().is_some_and(|length| length > whole_limit) {
        return Err(RequestError::TooBig { limit: max_file_bytes });
    }

    let body = std::mem::replace(&mut request.body, empty_body());
    let body = non_empty(body, request.content_length()).await?;
    let arrival = Arrival::new(body, request.content_length());
    let limits = SizeLimit::new()
        .whole_stream(whole_limit)
        .per_field(max_file_bytes)
        .for_field("uid", TEXT_FIELD_LIMIT)
        .for_field("lang", TEXT_FIELD_LIMIT);
    let multipart = Multipart::with_constraints(
        arrival.stream(),
        boundary,
        Constraints::new().size_limit(limits),
    );

    match read_fields(multipart, max_file_bytes).await {
        Err(RequestError::MalformedForm(reason)) => Err(arrival.settle(reason).await),
        outcome => outcome,
    }
}

/// The fields of a multipart form. A form multer cannot read is reported as
/// malformed; whether it was in fact cut off is for the caller to settle.
async fn read_fields(
    mut multipart: Multipart<'_>,
    max_file_bytes: u64,
) -> Result<UploadForm, RequestError> {
    let mut form = UploadForm::default();
    while let Some(field) =
        multipart.next_field().await.map_err(|e| upload_error(e, max_file_bytes))?
    {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            // Of repeated fields the first counts, as in the login form.
            "uid" => {
                let login = text(field, max_file_bytes).await?;
                form.login.get_or_insert(login);
            }
            "lang" => {
                let lang = text(field, max_file_bytes).await?;
                form.lang.get_or_insert(lang);
            }
            "file" => {
                let file_name = field.file_name().map(str::to_string);
                let bytes = field.bytes().await.map_err(|e| upload_error(e, max_file_bytes))?;
                // A browser sends an empty, nameless part when no file was
                // chosen; keep the first part that holds something.
                let chosen =
                    !bytes.is_empty() || file_name.as_deref().is_some_and(|n| !n.is_empty());
                if chosen && form.file.is_none() {
                    form.file = Some(UploadedFile { name: file_name, bytes });
                }
            }
            other => log::trace!("multipart field={other:?} ignored"),
        }
    }
    Ok(form)
}

async fn text(field: multer::Field<'_>, max_file_bytes: u64) -> Result<String, RequestError> {
    let name = field.name().unwrap_or("").to_string();
    field.text().await.map_err(|e| match e {
        multer::Error::FieldSizeExceeded { .. } if name == "uid" => {
            RequestError::BadLogin(LoginProblem::TooLong)
        }
        // No language code is this long: the form was not made by our page.
        multer::Error::FieldSizeExceeded { .. } => RequestError::NotMultipart,
        other => upload_error(other, max_file_bytes),
    })
}

/// An upload's body, counted against its declared length as it is read, and
/// kept within reach: multer may give up on a form before its end has
/// arrived, and only the rest tells a broken form from a cut-off one.
struct Arrival {
    declared: Option<u64>,
    received: Arc<AtomicU64>,
    body: Arc<Mutex<Body>>,
}

impl Arrival {
    fn new(body: Body, declared: Option<u64>) -> Arrival {
        Arrival { declared, received: Arc::default(), body: Arc::new(Mutex::new(body)) }
    }

    /// The body from where it has been read up to, counting what it yields.
    fn stream(&self) -> Body {
        let (body, received) = (Arc::clone(&self.body), Arc::clone(&self.received));
        Box::pin(futures_util::stream::poll_fn(move |context| {
            let mut body = body.lock().unwrap_or_else(PoisonError::into_inner);
            let polled = body.as_mut().poll_next(context);
            if let Poll::Ready(Some(Ok(chunk))) = &polled {
                received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            polled
        }))
    }

    /// What a form multer could not read was: broken if every declared byte
    /// comes (in a browser, most likely a file name holding control
    /// characters, which browsers send raw), else cut off. Without a declared
    /// length it cannot be known, and it is taken to be cut off.
    async fn settle(&self, reason: String) -> RequestError {
        let Some(declared) = self.declared else { return RequestError::CutOff(reason) };
        let mut rest = self.stream();
        while self.received.load(Ordering::Relaxed) < declared {
            match rest.next().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            }
        }
        if self.received.load(Ordering::Relaxed) >= declared {
            RequestError::MalformedForm(reason)
        } else {
            RequestError::CutOff(reason)
        }
    }
}

/// Maps multer's errors to what the student is told. A form whose parts
/// cannot be read is reported as malformed until `Arrival::settle` says
/// whether it was cut off instead.
fn upload_error(error: multer::Error, max_file_bytes: u64) -> RequestError {
    match error {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            RequestError::TooBig { limit: max_file_bytes }
        }
        multer::Error::StreamReadFailed(_) => RequestError::CutOff(error.to_string()),
        other => RequestError::MalformedForm(other.to_string()),
    }
}

/// Waits for the body's first bytes. A body that ends before any byte
/// arrives is empty by its declared length (not a form), cut off, or, when
/// no length was declared, a chunked upload the web server did not pass on:
/// say so rather than "no file".
async fn non_empty(mut body: Body, declared: Option<u64>) -> Result<Body, RequestError> {
    loop {
        match body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(chunk)) => {
                let first = futures_util::stream::once(async move { Ok(chunk) });
                return Ok(Box::pin(first.chain(body)));
            }
            Some(Err(e)) => return Err(RequestError::CutOff(e.to_string())),
            None => {
                return Err(match declared {
                    Some(0) => RequestError::MalformedForm("the request's body is empty".into()),
                    Some(_) => RequestError::CutOff("the request has no body".into()),
                    None => RequestError::LengthRequired,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    fn multipart_request(parts: &[(&str, Option<&str>, &[u8])]) -> Request {
        let mut body = Vec::new();
        for (name, file_name, value) in parts {
            body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.push(b'"');
            if let Some(file_name) = file_name {
                body.extend_from_slice(format!("; filename=\"{file_name}\"").as_bytes());
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        let mut request =
            Request::new(Method::POST, "/ai", "/uploads_file").with_body(Bytes::from(body));
        request
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("multipart/form-data; boundary=XyZ"));
        request
    }

    fn read(request: &mut Request, limit: u64) -> Result<UploadForm, RequestError> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(read_upload(request, limit))
    }

    #[test]
    fn fields_come_in_any_order_and_the_first_of_repeated_ones_counts() {
        let mut request = multipart_request(&[
            ("file", Some("猫.jpg"), b"abc"),
            ("uid", None, b"taro"),
            ("uid", None, b"jiro"),
        ]);
        let form = read(&mut request, 100).unwrap();
        assert_eq!(form.login.as_deref(), Some("taro"));
        let file = form.file.unwrap();
        assert_eq!(file.name.as_deref(), Some("猫.jpg"));
        assert_eq!(&file.bytes[..], b"abc");
    }

    #[test]
    fn an_empty_nameless_file_part_is_no_file() {
        let mut request = multipart_request(&[("uid", None, b"taro"), ("file", Some(""), b"")]);
        assert!(read(&mut request, 100).unwrap().file.is_none());
    }

    #[test]
    fn limits_and_cut_off_bodies() {
        let mut big = multipart_request(&[("file", Some("a.jpg"), &[0u8; 101])]);
        assert!(matches!(read(&mut big, 100), Err(RequestError::TooBig { limit: 100 })));

        let mut long_login = multipart_request(&[("uid", None, &[b'a'; 5000])]);
        assert!(matches!(read(&mut long_login, 100), Err(RequestError::BadLogin(_))));

        // Fields the page does not send are skipped, however long.
        let comment = [b'c'; 10_000];
        let mut extra = multipart_request(&[
            ("comment", None, &comment),
            ("uid", None, b"taro"),
            ("file", Some("a.jpg"), b"xyz"),
        ]);
        let form = read(&mut extra, 20_000).unwrap();
        assert_eq!(form.file.unwrap().bytes.as_ref(), b"xyz");

        let whole = multipart_request(&[("uid", None, b"taro"), ("file", Some("a"), b"xyz")]);
        let mut cut = Request::new(Method::POST, "/ai", "/uploads_file");
        cut.headers = whole.headers.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut whole_body = whole.body;
        let bytes = runtime.block_on(whole_body.next()).unwrap().unwrap();
        let mut cut = cut.with_body(bytes.slice(..bytes.len() - 20));
        assert!(matches!(read(&mut cut, 100), Err(RequestError::CutOff(_))));
    }

    #[test]
    fn a_whole_but_broken_form_is_not_called_cut_off() {
        fn with_length(mut request: Request, length: usize) -> Request {
            request.headers.insert(http::header::CONTENT_LENGTH, length.into());
            request
        }
        let whole =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"uid\"\r\n\r\ntaro\r\n--XyZ--\r\n";
        let ends_early = &whole[..whole.len() - 12];
        let control_byte = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; \
                             filename=\"a\x01b.jpg\"\r\n\r\nxyz\r\n--XyZ--\r\n";
        let cases: [(&[u8], usize, &str); 4] = [
            (ends_early, ends_early.len(), "malformed"),
            (control_byte, control_byte.len(), "malformed"),
            (ends_early, whole.len(), "cut off"),
            (&control_byte[..20], control_byte.len(), "cut off"),
        ];
        for (body, length, expected) in cases {
            let request = multipart_request(&[]).with_body(Bytes::copy_from_slice(body));
            let got = match read(&mut with_length(request, length), 100) {
                Err(RequestError::MalformedForm(_)) => "malformed",
                Err(RequestError::CutOff(_)) => "cut off",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{} of {length} bytes", body.len());
        }
    }

    /// multer gives up at a broken part header while most of a photo is still
    /// on its way: what is missing is read before the form is called cut off.
    #[test]
    fn a_broken_form_is_judged_on_all_its_bytes() {
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; \
                     filename=\"a\x01b.jpg\"\r\n\r\n";
        let mut rest = vec![b'p'; 100_000];
        rest.extend_from_slice(b"\r\n--XyZ--\r\n");
        let length = head.len() + rest.len();

        for (sent, expected) in [(rest.len(), "malformed"), (rest.len() - 1, "cut off")] {
            let mut request = multipart_request(&[]);
            request.headers.insert(http::header::CONTENT_LENGTH, length.into());
            let chunks = [Bytes::from_static(head), Bytes::copy_from_slice(&rest[..sent])];
            request.body = Box::pin(futures_util::stream::iter(chunks.map(Ok)));
            let got = match read(&mut request, 200_000) {
                Err(RequestError::MalformedForm(_)) => "malformed",
                Err(RequestError::CutOff(_)) => "cut off",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{} of {length} bytes", head.len() + sent);
        }
    }

    #[test]
    fn empty_bodies_without_a_length_need_one() {
        let mut request = multipart_request(&[]).with_body(Bytes::new());
        assert!(matches!(read(&mut request, 100), Err(RequestError::LengthRequired)));

        let mut request = multipart_request(&[]).with_body(Bytes::new());
        request.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(matches!(read(&mut request, 100), Err(RequestError::MalformedForm(_))));

        let mut request = Request::new(Method::POST, "/ai", "/uploads_file");
        request.headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(matches!(read(&mut request, 100), Err(RequestError::NotMultipart)));
    }
}
