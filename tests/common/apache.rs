//! A private Apache in front of the real worker, as `scripts/run-apache`
//! starts it from the configuration shipped in `apache/`, for one test; and
//! the student's steps through it. Logs stay under
//! `target/test-output/apache/<test>/` for reading after a failure.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;

/// How long Apache and the worker may take to answer their first request: a
/// debug build loads the model in a few seconds, a loaded machine slower.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// The id of the `<body>` of our own error pages in `apache/errors/`.
pub const APACHE_ERROR_PAGE: &str = r#"id="imagenet-classroom-apache-error""#;

/// How to start the private Apache.
#[derive(Clone, Debug)]
pub struct Options {
    /// A manifest in `models/` (its name without `.toml`).
    pub model: &'static str,
    /// Apache starts the worker itself through mod_fcgid.
    pub fcgid: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { model: "mobilenetv2", fcgid: false }
    }
}

/// A running `scripts/run-apache`, stopped (with everything it started) on
/// drop.
pub struct Apache {
    child: Child,
    https_port: u16,
    http_port: u16,
    uploads: PathBuf,
    logs: PathBuf,
}

impl Apache {
    /// Apache with mod_proxy_fcgi and the MobileNetV2 worker.
    pub fn start(test: &str) -> Apache {
        Apache::start_with(test, Options::default())
    }

    /// Apache as `options` say. `test` names the folder of its logs.
    pub fn start_with(test: &str, options: Options) -> Apache {
        require_system_packages(options.fcgid);
        // The test models live in ../shared; without it the worker never
        // starts and Apache would wait for it, so say at once where we looked.
        super::shared();
        let logs = output_dir("apache").join(test);
        // A port found free may be taken by another test before Apache binds
        // it; try again with new ports then.
        for attempt in 1..=3 {
            match Apache::try_start(&logs, &options) {
                Ok(apache) => return apache,
                Err(why) if why.contains("Address already in use") && attempt < 3 => continue,
                Err(why) => panic!("scripts/run-apache did not start:\n{why}"),
            }
        }
        unreachable!()
    }

    fn try_start(logs: &Path, options: &Options) -> Result<Apache, String> {
        if logs.exists() {
            std::fs::remove_dir_all(logs).unwrap();
        }
        // Inside the logs folder rather than a private temporary one: as root
        // under mod_fcgid the worker runs as www-data, which must reach it.
        let uploads = logs.join("uploads");
        std::fs::create_dir_all(&uploads).unwrap();
        let (https_port, http_port) = (free_port(), free_port());
        let stderr = std::fs::File::create(logs.join("run-apache.stderr")).unwrap();

        let mut command = Command::new(super::repo().join("scripts/run-apache"));
        command
            .args(["--port", &https_port.to_string(), "--http-port", &http_port.to_string()])
            .arg("--model")
            .arg(super::repo().join("models").join(format!("{}.toml", options.model)))
            .arg("--uploads")
            .arg(&uploads)
            .arg("--bin")
            .arg(env!("CARGO_BIN_EXE_imagenet-classroom"))
            .arg("--logs")
            .arg(logs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if options.fcgid {
            command.arg("--fcgid");
        }
        let mut child = command.spawn().expect("cannot run scripts/run-apache (bash)");

        // The first line on stdout is the base URL, once both are ready.
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            // Keep reading so that the script never blocks on a full pipe.
            for _ in lines {}
        });
        let failure = |child: &mut Child, what: &str| {
            stop(child);
            let stderr =
                std::fs::read_to_string(logs.join("run-apache.stderr")).unwrap_or_default();
            format!("{what}\n--- its stderr ---\n{stderr}--- logs in {} ---", logs.display())
        };
        let line = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(failure(&mut child, "it exited without printing the URL")),
            Err(_) => return Err(failure(&mut child, "it printed no URL in time")),
        };
        let apache = Apache { child, https_port, http_port, uploads, logs: logs.to_owned() };
        assert_eq!(line, apache.url(""), "run-apache printed an unexpected base URL");
        Ok(apache)
    }

    /// `https://127.0.0.1:PORT/ai/` followed by `path` (no leading slash).
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/ai/{path}", self.https_port)
    }

    /// `https://127.0.0.1:PORT` followed by `path` (with its leading slash).
    pub fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https_port)
    }

    /// The plain HTTP side, which should only redirect.
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// The worker's uploads folder.
    pub fn uploads(&self) -> &Path {
        &self.uploads
    }

    /// What the worker logged so far (with mod_proxy_fcgi).
    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.logs.join("worker.log")).unwrap_or_default()
    }

    /// Stops the worker, leaving Apache running; returns once it is gone.
    pub async fn stop_worker(&self, client: &reqwest::Client) {
        self.signal(libc::SIGUSR1);
        self.wait_for_health(client, StatusCode::SERVICE_UNAVAILABLE).await;
    }

    /// Starts the worker again; returns once Apache reaches it.
    pub async fn start_worker(&self, client: &reqwest::Client) {
        self.signal(libc::SIGUSR2);
        self.wait_for_health(client, StatusCode::OK).await;
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "cannot signal run-apache: {}", std::io::Error::last_os_error());
    }

    async fn wait_for_health(&self, client: &reqwest::Client, wanted: StatusCode) {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let status = client.get(self.url("healthz")).send().await.map(|r| r.status());
            if matches!(status, Ok(s) if s == wanted) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/ai/healthz never answered {wanted} (last: {status:?}); logs in {}",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops run-apache with SIGTERM, so that it stops its Apache and worker
/// too; killed outright, it would leave them running.
fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    // run-apache waits for the worker to finish its requests (up to 35 s).
    for _ in 0..600 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A client as a student's browser would be, trusting the self-signed
/// certificate and showing redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A photo form: login name `uid` and `bytes` as the file `name`.
pub fn photo_form(uid: &str, name: &str, bytes: Vec<u8>) -> Form {
    let mime = if name.ends_with(".png") { "image/png" } else { "image/jpeg" };
    let part = Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).unwrap();
    Form::new().text("uid", uid.to_owned()).part("file", part)
}

/// `eagle.jpg` uploaded as `uid` with a file part of unknown length, which
/// makes reqwest send the whole form with chunked transfer encoding and no
/// Content-Length.
pub fn chunked_photo_form(uid: &str) -> Form {
    let eagle = crate::common::photo("eagle.jpg");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        eagle.chunks(16 << 10).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let part = Part::stream(body).file_name("eagle.jpg").mime_str("image/jpeg").unwrap();
    Form::new().text("uid", uid.to_owned()).part("file", part)
}

/// One student's whole visit: login page, upload page, upload, result page
/// and the photo on it. Checks each step and returns the result page.
pub async fn student_flow(
    client: &reqwest::Client,
    apache: &Apache,
    uid: &str,
    photo: &str,
) -> String {
    let login = client.get(apache.url("")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK, "login page");
    let login = login.text().await.unwrap();
    assert!(login.contains(r#"action="/ai/goto_uploads_file"#), "login form:\n{login}");
    assert!(login.contains(r#"name="uid""#), "login form:\n{login}");

    let upload_page =
        client.post(apache.url("goto_uploads_file")).form(&[("uid", uid)]).send().await.unwrap();
    assert_eq!(upload_page.status(), StatusCode::OK, "upload page");
    let upload_page = upload_page.text().await.unwrap();
    assert!(upload_page.contains(r#"action="/ai/uploads_file"#), "upload form:\n{upload_page}");
    assert!(upload_page.contains(r#"type="file""#), "upload form:\n{upload_page}");
    assert!(upload_page.contains(uid), "the upload page should greet {uid}");

    let bytes = super::photo(photo);
    let result_url = upload(client, apache, uid, photo, bytes.clone()).await;
    let result = client.get(&result_url).send().await.unwrap();
    assert_eq!(result.status(), StatusCode::OK, "result page {result_url}");
    let result = result.text().await.unwrap();
    assert!(result.contains(uid), "the result page should name {uid}");

    let src = attribute_of(&result, r#"id="photo""#, "src");
    assert!(src.starts_with("/ai/photo/"), "photo URL {src}");
    let served = client.get(apache.https(&src)).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK, "photo {src}");
    let mime = if photo.ends_with(".png") { "image/png" } else { "image/jpeg" };
    assert_eq!(served.headers()["content-type"], mime, "photo {src}");
    assert!(served.bytes().await.unwrap() == bytes, "the photo served differs from the upload");
    result
}

/// Uploads a photo and returns the absolute URL of its result page.
pub async fn upload(
    client: &reqwest::Client,
    apache: &Apache,
    uid: &str,
    name: &str,
    bytes: Vec<u8>,
) -> String {
    let response = client
        .post(apache.url("uploads_file"))
        .multipart(photo_form(uid, name, bytes))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::SEE_OTHER, "upload of {name} by {uid}:\n{body}");
    let location = location.expect("a 303 without Location");
    let path = location.strip_prefix(&apache.https("")).unwrap_or(&location);
    assert!(path.starts_with("/ai/result/"), "result URL {location}");
    apache.https(path)
}

/// The top-1 class name on a result page: the last cell of the table's first
/// row.
pub fn top1(result_page: &str) -> String {
    let body = result_page.split("<tbody>").nth(1).expect("no result table");
    let row = body.split("</tr>").next().unwrap();
    let cell = row.rsplit("<td").next().unwrap();
    let text = cell.split_once('>').unwrap().1.split("</td>").next().unwrap();
    text.trim().to_owned()
}

/// The value of `attribute` on the tag holding `marker`.
fn attribute_of(html: &str, marker: &str, attribute: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    let tag = &html[start..start + html[start..].find('>').unwrap()];
    let value = tag.split(&format!(r#"{attribute}=""#)).nth(1).expect(attribute);
    value.split('"').next().unwrap().replace("&#x2F;", "/").replace("&amp;", "&")
}

/// Where tests leave what a person may want to look at afterwards:
/// `target/test-output/<what>/`.
pub fn output_dir(what: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let dir = target.join("test-output").join(what);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fails, saying what to install, when Debian's packages are missing: these
/// tests must not be skipped silently.
pub fn require_system_packages(fcgid: bool) {
    let mut missing = Vec::new();
    if !Path::new("/usr/sbin/apache2").exists() {
        missing.push("apache2");
    }
    if fcgid && !Path::new("/usr/lib/apache2/modules/mod_fcgid.so").exists() {
        missing.push("libapache2-mod-fcgid");
    }
    for (program, package) in [("openssl", "openssl"), ("curl", "curl")] {
        if !on_path(program) {
            missing.push(package);
        }
    }
    assert!(
        missing.is_empty(),
        "these tests run a real Apache, but Debian packages are missing: {}. Install them \
         with .ci/install-system-deps (as root or with sudo), or: apt-get install -y {}",
        missing.join(" "),
        missing.join(" ")
    );
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
