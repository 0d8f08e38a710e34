//! Accepting an upload: read the form, check the login name and the file,
//! classify on the worker pool, then store the photo and its result and
//! send the student to the result page. Nothing is written until the photo
//! has been classified, so rejected input leaves nothing on disk. The JSON
//! API shares the path up to classification.

use std::time::Duration;

use http::StatusCode;

use super::app::{App, Context};
use super::error::RequestError;
use super::form::{read_upload, UploadForm, UploadedFile};
use super::login::check_login;
use super::request::Request;
use super::response::Response;
use super::storage::{new_result_id, LogLine, ResultRecord, StoredPrediction};
use crate::classify_cmd::JsonResult;
use crate::decode::Format;
use crate::model::{Classification, ClassifyError};

impl App {
    /// `POST /uploads_file`: classify, store, and redirect to the result.
    pub(super) async fn upload(
        &self,
        request: &mut Request,
        context: &mut Context,
    ) -> Result<Response, RequestError> {
        // The upload page's form carries the name in its address too, so that
        // a photo refused before the form is read (over the limit) still gets
        // the button back to the upload page. The name in the form counts.
        context.login = check_login(request.query_param("uid").as_deref()).ok();
        let form = read_upload(request, self.settings.max_upload_bytes).await?;
        context.use_language(form.lang.as_deref());
        let login = check_login(form.login.as_deref());
        context.login = login.as_ref().ok().cloned();
        let login = login.map_err(RequestError::BadLogin)?;
        let file = form.file.ok_or(RequestError::NoFile)?;

        let (format, classification) = self.classify(&file).await?;
        context.top1 = classification.top.first().map(|p| p.label.clone());

        let id = new_result_id();
        let record = ResultRecord {
            id: id.clone(),
            time: now(),
            login,
            file: String::new(),
            mime_type: format.mime_type().to_string(),
            model: self.model_name.clone(),
            model_title: self.model_title.clone(),
            millis: millis(classification.timings.total()),
            top: classification.top.iter().map(StoredPrediction::from).collect(),
        };
        self.keep(record, file, format).await?;
        Ok(Response::see_other(&context.link(&format!("/result/{id}"), context.language, false)))
    }

    /// `POST /api/classify`: the classification as the CLI's `--json` gives it.
    pub(super) async fn api_classify(
        &self,
        request: &mut Request,
        context: &mut Context,
    ) -> Result<Response, RequestError> {
        let UploadForm { login, lang, file } =
            read_upload(request, self.settings.max_upload_bytes).await?;
        context.use_language(lang.as_deref());
        if let Some(login) = login {
            context.login = Some(check_login(Some(&login)).map_err(RequestError::BadLogin)?);
        }
        let file = file.ok_or(RequestError::NoFile)?;

        let (_, classification) = self.classify(&file).await?;
        context.top1 = classification.top.first().map(|p| p.label.clone());

        let top: Vec<StoredPrediction> =
            classification.top.iter().map(StoredPrediction::from).collect();
        let line = LogLine {
            time: &now(),
            id: None,
            login: context.login.as_deref(),
            file: None,
            model: &self.model_name,
            top: &top,
            millis: millis(classification.timings.total()),
        };
        if let Err(e) = self.storage.append_log(&line) {
            log::error!("cannot append to the results log: {e}");
        }
        let image = file.name.as_deref().unwrap_or("");
        let json = JsonResult::new(image, &self.model_name, &classification);
        Ok(Response::json(StatusCode::OK, &json))
    }

    /// Checks the bytes are a picture we take, then classifies it on the pool.
    async fn classify(
        &self,
        file: &UploadedFile,
    ) -> Result<(Format, Classification), RequestError> {
        let format = Format::sniff(&file.bytes).map_err(RequestError::from_image)?;
        let outcome = self
            .pool
            .classify(file.bytes.clone(), self.settings.top)
            .await
            .map_err(|_| RequestError::Busy)?;
        match outcome {
            Ok(classification) => Ok((format, classification)),
            Err(ClassifyError::Image(e)) => Err(RequestError::from_image(e)),
            Err(e @ ClassifyError::Inference(_)) => Err(RequestError::Internal(e.into())),
        }
    }

    /// Stores the photo, its result and the results log line, off the
    /// async threads. If the result cannot be saved the photo goes too.
    async fn keep(
        &self,
        mut record: ResultRecord,
        file: UploadedFile,
        format: Format,
    ) -> Result<(), RequestError> {
        let storage = self.storage.clone();
        let kept = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let name = storage
                .store_photo(&record.login, file.name.as_deref(), format, &file.bytes)
                .map_err(|e| {
                    anyhow::Error::new(e)
                        .context(format!("cannot store the photo in {}", storage.dir().display()))
                })?;
            record.file = name;
            if let Err(e) = storage.save_result(&record) {
                storage.remove_photo(&record.file);
                return Err(anyhow::Error::new(e).context("cannot save the result"));
            }
            let line = LogLine {
                time: &record.time,
                id: Some(&record.id),
                login: Some(&record.login),
                file: Some(&record.file),
                model: &record.model,
                top: &record.top,
                millis: record.millis,
            };
            // The student's result is safe by now: a log failure is ours to
            // fix, not theirs to see.
            if let Err(e) = storage.append_log(&line) {
                log::error!("cannot append to the results log: {e}");
            }
            Ok(())
        });
        match kept.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RequestError::Internal(e)),
            Err(e) => Err(RequestError::Internal(e.into())),
        }
    }
}

fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e4).round() / 10.0
}
