//! The pages a student moves through: the login form, the upload form, the
//! result, and the stored photo. Each reads what it needs from the request,
//! checks it, and fills its template; accepting an upload is in `upload`.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::StatusCode;
use serde_json::json;

use super::app::{App, Context};
use super::error::RequestError;
use super::form::read_url_form;
use super::i18n::human_bytes;
use super::login::{check_login, LoginProblem, MAX_LOGIN_CHARS};
use super::render::Switch;
use super::request::Request;
use super::response::Response;

/// The login form sends a name and a language: a few hundred bytes.
const LOGIN_FORM_LIMIT: u64 = 16 * 1024;

impl App {
    /// `GET /`: the login form, with the name filled in when the link
    /// back from a result carries it.
    pub(super) fn login_page(
        &self,
        request: &Request,
        context: &mut Context,
    ) -> Result<Response, RequestError> {
        let uid = request.query_param("uid").unwrap_or_default();
        // Only a name that would be accepted fills the field and the links.
        context.login = check_login(Some(&uid)).ok();
        let data = json!({
            "action": context.link("/goto_uploads_file", context.language, false),
            "uid": context.login.as_deref().unwrap_or(""),
            "max_login_chars": MAX_LOGIN_CHARS,
        });
        let switch = Switch::Link(context.link("/", context.language.other(), true));
        let page = self.render("login", context, "login_title", &switch, data)?;
        Ok(Response::html(StatusCode::OK, page))
    }

    /// `POST /goto_uploads_file`: the upload form for a login name.
    pub(super) async fn upload_page(
        &self,
        request: &mut Request,
        context: &mut Context,
    ) -> Result<Response, RequestError> {
        // The form holds only the login name and the language: a body too big
        // for it can only be an overlong name, so say that, not "file too big".
        let form = read_url_form(request, LOGIN_FORM_LIMIT).await.map_err(|e| match e {
            RequestError::TooBig { .. } => RequestError::BadLogin(LoginProblem::TooLong),
            other => other,
        })?;
        context.use_language(form.get("lang"));
        let login = check_login(form.get("uid")).map_err(RequestError::BadLogin)?;
        context.login = Some(login.clone());

        let catalogue = self.renderer.catalogue();
        let limit = human_bytes(self.settings.max_upload_bytes);
        let data = json!({
            "action": context.link("/uploads_file", context.language, true),
            "uid": login,
            "greeting": catalogue.format(context.language, "upload_greeting", &[("login", &login)]),
            "accepted": catalogue.format(context.language, "upload_accepted", &[("limit", &limit)]),
            "back_url": context.link("/", context.language, true),
        });
        let switch = Switch::Form {
            action: context.link("/goto_uploads_file", context.language.other(), false),
            uid: login,
        };
        let page = self.render("upload", context, "upload_title", &switch, data)?;
        // The browser may keep this page, which answers a form post: without a
        // copy its Back button from the result asks to send the form again.
        // `private` keeps it out of shared caches; the name is not a secret.
        let keep = HeaderValue::from_static("private, no-cache");
        Ok(Response::html(StatusCode::OK, page).with_header(CACHE_CONTROL, keep))
    }

    /// `GET /result/<id>`: the photo beside its likeliest classes.
    pub(super) async fn result_page(
        &self,
        id: &str,
        context: &mut Context,
    ) -> Result<Response, RequestError> {
        let record = self.load_result(id).await?;
        context.login = Some(record.login.clone());
        context.top1 = record.top.first().map(|p| p.label.clone());

        let catalogue = self.renderer.catalogue();
        let language = context.language;
        let rows: Vec<_> = record
            .top
            .iter()
            .map(|p| {
                let percent = format!("{:.1}", f64::from(p.probability) * 100.0);
                json!({ "rank": p.rank, "percent": percent, "label": p.label, "names": p.names })
            })
            .collect();
        let millis = format!("{:.0}", record.millis);
        let data = json!({
            "photo_url": format!("{}/photo/{id}", context.mount),
            "intro": catalogue.format(language, "result_intro", &[("login", &record.login)]),
            "model": catalogue.format(language, "result_model", &[("model", &record.model_title)]),
            "time": catalogue.format(language, "result_time", &[("ms", &millis)]),
            "rows": rows,
            "back_url": context.link("/", language, true),
            "another": context.another_photo(),
        });
        let switch = Switch::Link(context.link(&format!("/result/{id}"), language.other(), false));
        let page = self.render("result", context, "result_title", &switch, data)?;
        Ok(Response::html(StatusCode::OK, page))
    }

    /// `GET /photo/<id>`: the stored photo, as uploaded.
    pub(super) async fn photo(&self, id: &str) -> Result<Response, RequestError> {
        let record = self.load_result(id).await?;
        let path = self.storage.photo_path(&record.file).ok_or(RequestError::NotFound)?;
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            // A teacher may have cleaned the folder since.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RequestError::NotFound);
            }
            Err(e) => {
                let e = anyhow::Error::new(e).context(format!("cannot read {}", path.display()));
                return Err(RequestError::Internal(e));
            }
        };
        let content_type = HeaderValue::from_str(&record.mime_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        let mut response = Response::new(StatusCode::OK, "application/octet-stream", bytes)
            .with_header(CONTENT_TYPE, content_type)
            .with_header(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"))
            // The id never names another photo, so the browser may keep it.
            .with_header(CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
        response.log.login = Some(record.login);
        Ok(response)
    }

    async fn load_result(&self, id: &str) -> Result<super::storage::ResultRecord, RequestError> {
        let storage = self.storage.clone();
        let id_owned = id.to_string();
        let loaded = tokio::task::spawn_blocking(move || storage.load_result(&id_owned))
            .await
            .map_err(|e| RequestError::Internal(e.into()))?;
        match loaded {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(RequestError::NotFound),
            Err(e) => Err(RequestError::Internal(
                anyhow::Error::new(e).context(format!("cannot read result {id}")),
            )),
        }
    }

    fn render(
        &self,
        page: &str,
        context: &Context,
        title_key: &str,
        switch: &Switch,
        data: serde_json::Value,
    ) -> Result<String, RequestError> {
        self.renderer
            .page(page, context.language, title_key, switch, data)
            .map_err(RequestError::Internal)
    }
}
