//! What the web tests share: the real server started as a child process
//! (HTTP or FastCGI, port 0, a temporary uploads folder), clients for both
//! protocols, multipart bodies built by hand (so that every odd case can be
//! sent), and looks at what ended up on disk.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastcgi_client::{Client, Params};

use crate::common;

/// How long a server may take to load the model and say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// Which adapter a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    FastCgi,
}

/// A running server, stopped when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT/ai/` or the FastCGI address as printed.
    pub listening: String,
    pub uploads: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
}

/// Options for starting a server.
pub struct Start<'a> {
    pub protocol: Protocol,
    /// The address to give (`127.0.0.1:0` unless set).
    pub address: Option<String>,
    pub args: Vec<&'a str>,
    /// A configuration file's text, written to a temporary file.
    pub config: Option<&'a str>,
}

impl<'a> Start<'a> {
    pub fn http() -> Start<'a> {
        Start { protocol: Protocol::Http, address: None, args: Vec::new(), config: None }
    }

    pub fn fastcgi() -> Start<'a> {
        Start { protocol: Protocol::FastCgi, address: None, args: Vec::new(), config: None }
    }

    pub fn args(mut self, args: &[&'a str]) -> Start<'a> {
        self.args.extend_from_slice(args);
        self
    }

    pub fn address(mut self, address: &str) -> Start<'a> {
        self.address = Some(address.to_string());
        self
    }

    pub fn config(mut self, text: &'a str) -> Start<'a> {
        self.config = Some(text);
        self
    }

    pub fn start(self) -> Server {
        Server::start(self)
    }
}

/// The command that runs our binary from the repository root, with no
/// setting leaking in from the environment.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imagenet-classroom"));
    command.current_dir(common::repo());
    for name in [
        "CONFIG",
        "FASTCGI",
        "HTTP",
        "MODEL",
        "UPLOADS",
        "MOUNT",
        "TEMPLATES",
        "LOG_CONFIG",
        "WORKERS",
        "THREADS",
    ] {
        command.env_remove(format!("IMAGENET_CLASSROOM_{name}"));
    }
    command
}

impl Server {
    fn start(options: Start<'_>) -> Server {
        common::shared();
        let uploads = tempfile::tempdir().unwrap();
        let mut command = command();
        command.arg("serve");
        let address = options.address.unwrap_or_else(|| "127.0.0.1:0".into());
        match options.protocol {
            Protocol::Http => command.args(["--http", &address]),
            Protocol::FastCgi => command.args(["--fastcgi", &address]),
        };
        let config_path = uploads.path().join("config.toml");
        if let Some(text) = options.config {
            std::fs::write(&config_path, text).unwrap();
            command.arg("--config").arg(&config_path);
            // Paths in the file are relative to its (temporary) folder.
            command.arg("--templates").arg(common::repo().join("templates"));
        }
        command.args(["--model", "models/mobilenetv2.toml"]);
        command.arg("--uploads").arg(uploads.path().join("up"));
        command.args(&options.args);
        Server::spawn(command, uploads)
    }

    /// Starts `command` and waits for its `listening on` line.
    pub fn spawn(mut command: Command, uploads: tempfile::TempDir) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });

        let stdout = child.stdout.take().unwrap();
        let (lines, line) = mpsc::channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines() {
                if lines.send(text.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let first = match line.recv_timeout(START_TIMEOUT) {
            Ok(first) => first,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!("the server did not start; its stderr:\n{}", stderr.lock().unwrap());
            }
        };
        let listening = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Server { child, listening, uploads, stderr }
    }

    /// The uploads folder the server was given.
    pub fn uploads(&self) -> PathBuf {
        self.uploads.path().join("up")
    }

    /// `http://127.0.0.1:PORT/ai` (no trailing slash) for an HTTP server.
    pub fn base(&self) -> String {
        assert!(self.listening.starts_with("http://"), "{}", self.listening);
        self.listening.trim_end_matches('/').to_string()
    }

    /// The FastCGI address, for a FastCGI server.
    pub fn fastcgi_address(&self) -> String {
        self.listening.strip_prefix("fastcgi ").expect("a FastCGI server").to_string()
    }

    /// What the server has written to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log contains `text` (log lines are written after the
    /// response is sent).
    pub fn wait_for_log(&self, text: &str) -> String {
        for _ in 0..100 {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the log never showed {text:?}:\n{}", self.log());
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reqwest client that does not follow redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// One part of a multipart body.
pub struct Part<'a> {
    pub name: &'a str,
    pub file_name: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// A text field.
pub fn field<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part { name, file_name: None, bytes: value.as_bytes() }
}

/// A file field.
pub fn file<'a>(file_name: &'a str, bytes: &'a [u8]) -> Part<'a> {
    Part { name: "file", file_name: Some(file_name), bytes }
}

/// The boundary `multipart` uses.
pub const BOUNDARY: &str = "----imagenet-classroom-test-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body and its content type.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(file_name) = part.file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if part.file_name.is_some() {
            body.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// A FastCGI request as Apache sends it for `/ai{path}`.
pub struct FcgiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    /// `None` sends no CONTENT_LENGTH at all (a chunked upload).
    pub content_length: Option<usize>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub remote: &'a str,
    pub body: &'a [u8],
}

impl<'a> FcgiRequest<'a> {
    pub fn get(path: &'a str) -> FcgiRequest<'a> {
        FcgiRequest {
            method: "GET",
            path,
            query: "",
            content_type: None,
            content_length: None,
            headers: Vec::new(),
            remote: "192.0.2.10",
            body: b"",
        }
    }

    pub fn post(path: &'a str, content_type: &'a str, body: &'a [u8]) -> FcgiRequest<'a> {
        FcgiRequest {
            method: "POST",
            content_type: Some(content_type),
            content_length: Some(body.len()),
            body,
            ..FcgiRequest::get(path)
        }
    }
}

/// Sends one request over FastCGI (TCP or unix socket) and parses the CGI
/// answer into an HTTP response.
pub async fn fastcgi(address: &str, request: &FcgiRequest<'_>) -> http::Response<Vec<u8>> {
    let request_uri = if request.query.is_empty() {
        format!("/ai{}", request.path)
    } else {
        format!("/ai{}?{}", request.path, request.query)
    };
    let mut params = Params::default()
        .request_method(request.method)
        .script_name("/ai")
        .query_string(request.query)
        .request_uri(request_uri)
        .remote_addr(request.remote)
        .remote_port(50000)
        .server_name("127.0.0.1")
        .server_port(443)
        .server_protocol("HTTP/1.1")
        .custom("PATH_INFO", request.path);
    if let Some(content_type) = request.content_type {
        params = params.content_type(content_type);
    }
    if let Some(length) = request.content_length {
        params = params.content_length(length);
    }
    for (name, value) in &request.headers {
        params = params.custom(format!("HTTP_{}", name.to_uppercase().replace('-', "_")), *value);
    }
    let request = fastcgi_client::Request::new_tokio(params, request.body);
    let response = if address.contains('/') {
        let stream = tokio::net::UnixStream::connect(address).await.unwrap();
        Client::new_tokio(stream).execute_once(request).await.unwrap()
    } else {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        Client::new_tokio(stream).execute_once(request).await.unwrap()
    };
    response.try_into().expect("a well-formed CGI response")
}

/// The photos in an uploads folder (not hidden files, not the results log).
pub fn stored_photos(uploads: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(uploads) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && name != "results.jsonl")
        .collect();
    names.sort();
    names
}

/// The saved results.
pub fn stored_results(uploads: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(uploads.join(".results")) else { return Vec::new() };
    entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// The results log's lines, parsed.
pub fn results_log(uploads: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(uploads.join("results.jsonl")) else {
        return Vec::new();
    };
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Every file anywhere under the uploads folder (temporary ones included).
pub fn all_files(uploads: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![uploads.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path.strip_prefix(uploads).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// The id in a `/ai/result/<id>?lang=..` location.
pub fn result_id(location: &str) -> String {
    let path = location.split('?').next().unwrap();
    let id = path.rsplit('/').next().unwrap().to_string();
    assert_eq!(id.len(), 32, "{location}");
    id
}
