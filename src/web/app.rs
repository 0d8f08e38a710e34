//! The application: `App::handle` maps a request to a response and knows
//! nothing of HTTP servers or FastCGI. It routes, turns every failure into a
//! page in the student's language, and writes the request's log line. The
//! pages themselves are in `pages` and `upload`.

use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, ACCEPT_LANGUAGE, ALLOW, CONTENT_LENGTH, LOCATION, RETRY_AFTER};
use http::{Method, StatusCode};
use serde_json::json;

use super::error::{RequestError, RETRY_AFTER_SECONDS};
use super::i18n::Language;
use super::render::{Renderer, Switch};
use super::request::Request;
use super::response::Response;
use super::routes::{route, Route};
use super::storage::Storage;
use crate::model::Classifier;
use crate::pool::Pool;

/// What the application's behaviour depends on, besides its parts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The language when neither the student nor the browser picks one.
    pub language: Language,
    /// The largest photo taken, in bytes.
    pub max_upload_bytes: u64,
    /// How many classes a result shows.
    pub top: usize,
}

/// The application, shared by every connection.
pub struct App {
    pub(super) settings: Settings,
    pub(super) model_name: String,
    pub(super) model_title: String,
    pub(super) pool: Pool,
    pub(super) storage: Arc<Storage>,
    pub(super) renderer: Renderer,
}

/// What is known about the request while it is handled: enough to write
/// an error page in the right language with the right way back.
#[derive(Debug)]
pub(super) struct Context {
    pub mount: String,
    pub language: Language,
    pub login: Option<String>,
    /// Errors are answered as JSON rather than as a page.
    pub api: bool,
    pub top1: Option<String>,
}

impl Context {
    /// A path under the mount point, with `lang` (and the login name, when
    /// known and wanted) as query parameters.
    pub fn link(&self, path: &str, language: Language, with_login: bool) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("lang", language.code());
        if let (true, Some(login)) = (with_login, &self.login) {
            query.append_pair("uid", login);
        }
        format!("{}{path}?{}", self.mount, query.finish())
    }

    /// What the button back to the upload page needs, when the student is
    /// known: that page answers a form post of the login name.
    pub fn another_photo(&self) -> serde_json::Value {
        match &self.login {
            Some(login) => json!({
                "action": self.link("/goto_uploads_file", self.language, false),
                "uid": login,
            }),
            None => serde_json::Value::Null,
        }
    }

    /// Picks up a language sent in a form, which beats the URL's.
    pub fn use_language(&mut self, chosen: Option<&str>) {
        if let Some(language) = chosen.and_then(Language::from_code) {
            self.language = language;
        }
    }
}

impl App {
    /// Puts the parts together.
    pub fn new(
        settings: Settings,
        classifier: &Classifier,
        pool: Pool,
        storage: Storage,
        renderer: Renderer,
    ) -> App {
        App {
            settings,
            model_name: classifier.manifest().name.clone(),
            model_title: classifier.manifest().title.clone(),
            pool,
            storage: Arc::new(storage),
            renderer,
        }
    }

    /// The loaded model's name.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// Answers one request, and logs it.
    pub async fn handle(&self, mut request: Request) -> Response {
        let start = Instant::now();
        let shown = logged_path(&request.mount, &request.path);
        log::debug!(
            "request started method={} path={shown} client={}",
            request.method,
            request.remote
        );
        let mut context = Context {
            mount: request.mount.clone(),
            language: Language::negotiate(
                request.query_param("lang").as_deref(),
                request.header(ACCEPT_LANGUAGE),
                self.settings.language,
            ),
            login: None,
            api: request.path.starts_with("/api/"),
            top1: None,
        };

        let outcome = match route(&request.method, &request.path) {
            Ok(route) => self.dispatch(route, &mut request, &mut context).await,
            Err(error) => Err(error),
        };
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                if error.is_ours() {
                    log::error!("request failed path={shown} client={}: {error:#}", request.remote);
                } else {
                    log::warn!("request refused path={shown} client={}: {error}", request.remote);
                }
                self.error_response(&error, &context)
            }
        };
        if request.method == Method::HEAD {
            // HEAD announces the length the GET would have.
            response.headers.insert(CONTENT_LENGTH, HeaderValue::from(response.body.len()));
            response.body = bytes::Bytes::new();
        }

        log::info!(
            "request method={} path={shown} status={} login={} top1={} ms={:.1} client={}",
            request.method,
            response.status.as_u16(),
            quoted(context.login.as_deref().or(response.log.login.as_deref())),
            quoted(context.top1.as_deref().or(response.log.top1.as_deref())),
            start.elapsed().as_secs_f64() * 1e3,
            request.remote,
        );
        response
    }

    /// The 404 page for a path outside the mount point.
    pub fn not_found(&self, request: &Request) -> Response {
        let language = Language::negotiate(
            request.query_param("lang").as_deref(),
            request.header(ACCEPT_LANGUAGE),
            self.settings.language,
        );
        let context =
            Context { mount: request.mount.clone(), language, login: None, api: false, top1: None };
        log::info!(
            "request method={} path={} status=404 login=- top1=- ms=0.0 client={}",
            request.method,
            logged_path("", &request.path),
            request.remote
        );
        self.error_response(&RequestError::NotFound, &context)
    }

    async fn dispatch(
        &self,
        route: Route,
        request: &mut Request,
        context: &mut Context,
    ) -> Result<Response, RequestError> {
        match route {
            Route::MountRoot => {
                let query = if request.query.is_empty() { "" } else { "?" };
                let location = format!("{}/{query}{}", request.mount, request.query);
                let mut response = Response::text(StatusCode::MOVED_PERMANENTLY, String::new());
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers.insert(LOCATION, value);
                }
                Ok(response)
            }
            Route::Login => self.login_page(request, context),
            Route::UploadPage => self.upload_page(request, context).await,
            Route::Upload => self.upload(request, context).await,
            Route::Result(id) => self.result_page(&id, context).await,
            Route::Photo(id) => self.photo(&id).await,
            Route::ApiClassify => self.api_classify(request, context).await,
            Route::Health => {
                Ok(Response::text(StatusCode::OK, format!("ok {}\n", self.model_name)))
            }
        }
    }

    /// The page (or, for the API, the JSON) that tells what went wrong.
    pub(super) fn error_response(&self, error: &RequestError, context: &Context) -> Response {
        let catalogue = self.renderer.catalogue();
        let args = error.message_args();
        let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let message = catalogue.format(context.language, error.message_key(), &args);
        let status = error.status();

        let mut response = if context.api {
            let body = json!({ "status": status.as_u16(), "code": error.code(), "error": message });
            Response::json(status, &body)
        } else {
            let data = json!({
                "status": status.as_u16(),
                "message": message,
                "back_url": context.link("/", context.language, true),
                "another": context.another_photo(),
            });
            let switch = Switch::Link(context.link("/", context.language.other(), true));
            match self.renderer.page("error", context.language, "error_title", &switch, data) {
                Ok(page) => Response::html(status, page),
                Err(e) => {
                    log::error!("cannot show the error page: {e:#}");
                    Response::text(status, format!("{} {message}\n", status.as_u16()))
                }
            }
        };

        if let RequestError::MethodNotAllowed { allow } = error {
            response.headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let RequestError::Busy = error {
            response.headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// The longest path a log line shows, in bytes.
const LOGGED_PATH_BYTES: usize = 200;

/// The request's path for the log: cut short when a hand-made URL is long,
/// so that one request stays one readable line.
fn logged_path(mount: &str, path: &str) -> String {
    let whole = format!("{mount}{path}");
    if whole.len() <= LOGGED_PATH_BYTES {
        return whole;
    }
    let mut end = LOGGED_PATH_BYTES;
    while !whole.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &whole[..end], whole.len())
}

/// A log value: quoted with escapes when present (login names may hold
/// spaces or quotes), `-` when absent.
fn quoted(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:?}"))
}
