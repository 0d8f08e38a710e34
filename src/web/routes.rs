//! Which page a method and path (below the mount point) ask for. Unknown
//! paths are 404; a known path with the wrong method is 405 with `Allow`.

use http::Method;

use super::error::RequestError;

/// One of the application's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The mount point without its slash (`/ai`): redirect to `/ai/`.
    MountRoot,
    /// `GET /`: the login form.
    Login,
    /// `POST /goto_uploads_file`: the upload form for a login name.
    UploadPage,
    /// `POST /uploads_file`: classify an upload, then redirect to its result.
    Upload,
    /// `GET /result/<id>`.
    Result(String),
    /// `GET /photo/<id>`: the photo a result is about.
    Photo(String),
    /// `POST /api/classify`: classification as JSON, for programs.
    ApiClassify,
    /// `GET /healthz`: ready once the model is loaded.
    Health,
}

const GET: &str = "GET, HEAD";
const POST: &str = "POST";

/// Finds the route for a request.
pub fn route(method: &Method, path: &str) -> Result<Route, RequestError> {
    let (route, allow) = match path {
        "" => (Route::MountRoot, GET),
        "/" => (Route::Login, GET),
        "/goto_uploads_file" => (Route::UploadPage, POST),
        "/uploads_file" => (Route::Upload, POST),
        "/api/classify" => (Route::ApiClassify, POST),
        "/healthz" => (Route::Health, GET),
        _ => {
            if let Some(id) = single_segment(path, "/result/") {
                (Route::Result(id), GET)
            } else if let Some(id) = single_segment(path, "/photo/") {
                (Route::Photo(id), GET)
            } else {
                return Err(RequestError::NotFound);
            }
        }
    };
    let allowed = match allow {
        GET => method == Method::GET || method == Method::HEAD,
        _ => method == Method::POST,
    };
    if allowed {
        Ok(route)
    } else {
        Err(RequestError::MethodNotAllowed { allow })
    }
}

fn single_segment(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_find_their_route() {
        let id = "0123456789abcdef0123456789abcdef";
        let cases = [
            (Method::GET, "/".to_string(), Ok(Route::Login)),
            (Method::HEAD, "/".to_string(), Ok(Route::Login)),
            (Method::GET, String::new(), Ok(Route::MountRoot)),
            (Method::POST, "/goto_uploads_file".into(), Ok(Route::UploadPage)),
            (Method::POST, "/uploads_file".into(), Ok(Route::Upload)),
            (Method::GET, format!("/result/{id}"), Ok(Route::Result(id.into()))),
            (Method::GET, format!("/photo/{id}"), Ok(Route::Photo(id.into()))),
            (Method::POST, "/api/classify".into(), Ok(Route::ApiClassify)),
            (Method::GET, "/healthz".into(), Ok(Route::Health)),
            (Method::GET, "/uploads_file".into(), Err(405)),
            (Method::POST, "/".into(), Err(405)),
            (Method::DELETE, format!("/result/{id}"), Err(405)),
            (Method::GET, "/nope".into(), Err(404)),
            (Method::GET, "/result/".into(), Err(404)),
            (Method::GET, "/result/a/b".into(), Err(404)),
            (Method::GET, "/uploads_file/".into(), Err(404)),
        ];
        for (method, path, expected) in cases {
            let got = route(&method, &path).map_err(|e| e.status().as_u16());
            assert_eq!(got, expected, "{method} {path:?}");
        }
    }

    #[test]
    fn method_errors_say_what_is_allowed() {
        match route(&Method::GET, "/uploads_file") {
            Err(RequestError::MethodNotAllowed { allow }) => assert_eq!(allow, "POST"),
            other => panic!("{other:?}"),
        }
    }
}
