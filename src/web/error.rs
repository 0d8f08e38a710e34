//! Everything that can go wrong with a request, the status each gets, and
//! the catalogue message that tells the student what happened and what to
//! do. The student's mistakes are logged as warnings, ours as errors.

use http::StatusCode;

use super::login::{LoginProblem, MAX_LOGIN_CHARS};
use crate::decode::ImageError;

/// Why a request could not be answered with what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The login name is missing, too long or has control characters.
    #[error("bad login name: {0:?}")]
    BadLogin(LoginProblem),
    /// The upload form came without a file.
    #[error("no file chosen")]
    NoFile,
    /// The chosen file has no bytes.
    #[error("the file is empty")]
    EmptyFile,
    /// An upload that is not `multipart/form-data`.
    #[error("the request is not multipart/form-data")]
    NotMultipart,
    /// A form post that is not `application/x-www-form-urlencoded`.
    #[error("the request is not a form")]
    NotAForm,
    /// The body ended before the form did, or could not be read.
    #[error("the request was cut off: {0}")]
    CutOff(String),
    /// The whole body came, but it is not a well-formed multipart form.
    #[error("the form is malformed: {0}")]
    MalformedForm(String),
    /// The body is larger than we take.
    #[error("the upload is larger than {limit} bytes")]
    TooBig { limit: u64 },
    /// A body of unknown length arrived empty: the web server may have
    /// dropped a chunked upload.
    #[error("an upload without Content-Length arrived empty")]
    LengthRequired,
    /// The bytes are not a picture, or one in a format we do not take.
    #[error("{0}")]
    NotAnImage(ImageError),
    /// A picture we cannot use: cut off, broken, or too many pixels.
    #[error("{0}")]
    BadImage(ImageError),
    /// The classification queue is full.
    #[error("the classification queue is full")]
    Busy,
    /// No such page, result or photo.
    #[error("not found")]
    NotFound,
    /// The page exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// Our fault: the model failed, the disk is full, a template is broken.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

/// How long a student is asked to wait when the queue is full.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl RequestError {
    /// Sorts an image problem into "not an image" (415) or "a picture we
    /// cannot use" (422).
    pub fn from_image(error: ImageError) -> RequestError {
        match error {
            ImageError::Empty => RequestError::EmptyFile,
            ImageError::NotAnImage | ImageError::UnsupportedFormat(_) => {
                RequestError::NotAnImage(error)
            }
            ImageError::TooLarge { .. }
            | ImageError::NeedsTooMuchMemory { .. }
            | ImageError::Truncated
            | ImageError::Corrupt(_) => RequestError::BadImage(error),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::BadLogin(_)
            | RequestError::NoFile
            | RequestError::NotMultipart
            | RequestError::NotAForm
            | RequestError::CutOff(_)
            | RequestError::MalformedForm(_) => StatusCode::BAD_REQUEST,
            RequestError::TooBig { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            RequestError::EmptyFile | RequestError::NotAnImage(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            RequestError::BadImage(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RequestError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the fault is ours (logged as an error) rather than the
    /// student's (a warning).
    pub fn is_ours(&self) -> bool {
        matches!(self, RequestError::Internal(_))
    }

    /// A short stable name for programs (the JSON API's `code`).
    pub fn code(&self) -> &'static str {
        self.message_key()
            .strip_prefix("error_")
            .expect("every error message key starts with error_")
    }

    /// The catalogue key of the message the student sees.
    pub fn message_key(&self) -> &'static str {
        match self {
            RequestError::BadLogin(LoginProblem::Empty) => "error_login_empty",
            RequestError::BadLogin(LoginProblem::TooLong) => "error_login_too_long",
            RequestError::BadLogin(LoginProblem::ControlCharacters) => "error_login_control",
            RequestError::NoFile => "error_no_file",
            RequestError::EmptyFile => "error_empty_file",
            RequestError::NotMultipart => "error_not_multipart",
            RequestError::NotAForm => "error_not_form",
            RequestError::CutOff(_) => "error_cut_off",
            RequestError::MalformedForm(_) => "error_malformed_form",
            RequestError::TooBig { .. } => "error_too_big",
            RequestError::LengthRequired => "error_length_required",
            RequestError::NotAnImage(ImageError::UnsupportedFormat(_)) => "error_unsupported",
            RequestError::NotAnImage(_) => "error_not_image",
            RequestError::BadImage(
                ImageError::TooLarge { .. } | ImageError::NeedsTooMuchMemory { .. },
            ) => "error_too_many_pixels",
            RequestError::BadImage(ImageError::Truncated) => "error_truncated",
            RequestError::BadImage(_) => "error_corrupt",
            RequestError::Busy => "error_busy",
            RequestError::NotFound => "error_not_found",
            RequestError::MethodNotAllowed { .. } => "error_method",
            RequestError::Internal(_) => "error_internal",
        }
    }

    /// The values the message's placeholders take.
    pub fn message_args(&self) -> Vec<(&'static str, String)> {
        match self {
            RequestError::BadLogin(LoginProblem::TooLong) => {
                vec![("max", MAX_LOGIN_CHARS.to_string())]
            }
            RequestError::TooBig { limit } => vec![("limit", super::i18n::human_bytes(*limit))],
            RequestError::NotAnImage(ImageError::UnsupportedFormat(format)) => {
                vec![("format", format.clone())]
            }
            RequestError::BadImage(
                ImageError::TooLarge { max_megapixels, .. }
                | ImageError::NeedsTooMuchMemory { max_megapixels },
            ) => {
                vec![("max", max_megapixels.to_string())]
            }
            RequestError::Busy => vec![("seconds", RETRY_AFTER_SECONDS.to_string())],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_problems_get_415_or_422() {
        let cases = [
            (ImageError::NotAnImage, 415),
            (ImageError::UnsupportedFormat("TIFF".into()), 415),
            (ImageError::Empty, 415),
            (ImageError::Truncated, 422),
            (ImageError::Corrupt("x".into()), 422),
            (ImageError::TooLarge { width: 1, height: 1, max_megapixels: 80 }, 422),
            (ImageError::NeedsTooMuchMemory { max_megapixels: 80 }, 422),
        ];
        for (error, status) in cases {
            assert_eq!(
                RequestError::from_image(error.clone()).status().as_u16(),
                status,
                "{error}"
            );
        }
    }

    #[test]
    fn every_error_has_a_complete_message_in_both_languages() {
        use crate::web::i18n::{Catalogue, Language};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/messages.toml");
        let catalogue = Catalogue::load(&path).unwrap();
        let errors = [
            RequestError::BadLogin(LoginProblem::Empty),
            RequestError::BadLogin(LoginProblem::TooLong),
            RequestError::BadLogin(LoginProblem::ControlCharacters),
            RequestError::NoFile,
            RequestError::EmptyFile,
            RequestError::NotMultipart,
            RequestError::NotAForm,
            RequestError::CutOff("x".into()),
            RequestError::MalformedForm("x".into()),
            RequestError::TooBig { limit: 20 << 20 },
            RequestError::LengthRequired,
            RequestError::NotAnImage(ImageError::NotAnImage),
            RequestError::NotAnImage(ImageError::UnsupportedFormat("TIFF".into())),
            RequestError::BadImage(ImageError::Truncated),
            RequestError::BadImage(ImageError::Corrupt("x".into())),
            RequestError::BadImage(ImageError::TooLarge {
                width: 1,
                height: 1,
                max_megapixels: 80,
            }),
            RequestError::BadImage(ImageError::NeedsTooMuchMemory { max_megapixels: 80 }),
            RequestError::Busy,
            RequestError::NotFound,
            RequestError::MethodNotAllowed { allow: "POST" },
            RequestError::Internal(anyhow::anyhow!("x")),
        ];
        for error in errors {
            let args = error.message_args();
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            for language in [Language::Ja, Language::En] {
                assert!(catalogue.has(error.message_key()), "{}", error.message_key());
                let text = catalogue.format(language, error.message_key(), &args);
                assert!(!text.contains('{'), "{language}: {text}");
            }
        }
    }

    #[test]
    fn codes_are_the_message_keys_without_prefix() {
        assert_eq!(RequestError::TooBig { limit: 1 }.code(), "too_big");
        assert_eq!(RequestError::Busy.code(), "busy");
        assert_eq!(RequestError::MethodNotAllowed { allow: "GET" }.code(), "method");
    }
}
