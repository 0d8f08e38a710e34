//! Configuration as an administrator meets it: `check-config` on good and
//! bad files, `serve` from a configuration file and from the command line
//! alone, start-up errors that say what to fix, and stopping on SIGTERM.

mod common;
mod web_support;

use std::path::Path;
use std::time::Duration;

use web_support::{command, Server};

fn check_config(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imagenet-classroom.toml");
    std::fs::write(&path, text).unwrap();
    let output = command().arg("check-config").arg(&path).output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn repo_path(relative: &str) -> String {
    common::repo().join(relative).display().to_string()
}

#[test]
fn check_config_accepts_a_good_file() {
    common::shared();
    let text = format!(
        "fastcgi = \"/run/ic/fcgi.sock\"\nmodels_dir = \"{}\"\nmodel = \"mobilenetv2\"\n\
         templates = \"{}\"\nuploads = \"up\"\nworkers = 2\nlanguage = \"en\"\n",
        repo_path("models"),
        repo_path("templates")
    );
    let (code, stdout, stderr) = check_config(&text);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("is fine: serves FastCGI on /run/ic/fcgi.sock"), "{stdout}");
    assert!(stdout.contains("mobilenetv2.toml") && stdout.contains("2 workers"), "{stdout}");
}

#[test]
fn check_config_lists_every_problem() {
    let text = "http = \"8888\"\nmount = \"ai\"\nlanguage = \"fr\"\nqueue = 0\nmodel = \"nope\"\n\
                socket_mode = \"0999\"\n";
    let (code, stdout, _) = check_config(text);
    assert_eq!(code, Some(1), "{stdout}");
    for expected in [
        "\"8888\" is not an address",
        "`mount` is \"ai\"",
        "`language` is \"fr\"",
        "`queue` is 0",
        "no model named \"nope\"",
        "`socket_mode`",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }

    // Good values, missing files.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    let text = std::fs::read_to_string(common::repo().join("models/googlenet.toml")).unwrap();
    std::fs::write(&manifest, text).unwrap();
    let text = format!(
        "model = \"{}\"\ntemplates = \"{}\"\nuploads = \"/nonexistent/deeper/up\"\n",
        manifest.display(),
        dir.path().join("no-templates").display()
    );
    let (code, stdout, _) = check_config(&text);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("googlenet-12.onnx does not exist: run scripts/fetch-model"),
        "{stdout}"
    );
    assert!(stdout.contains("cannot read template") && stdout.contains("no-templates"), "{stdout}");
    assert!(stdout.contains("uploads folder /nonexistent/deeper/up does not exist"), "{stdout}");
}

#[test]
fn check_config_names_unknown_keys() {
    let (code, stdout, stderr) = check_config("colour = \"blue\"\n");
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stderr.contains("unknown field `colour`"), "{stderr}");
}

#[tokio::test]
async fn serve_reads_its_configuration_file() {
    common::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ic.toml");
    let text = format!(
        "http = \"127.0.0.1:0\"\nmount = \"/x/\"\nlanguage = \"en\"\nuploads = \"data\"\n\
         model = \"{}\"\ntemplates = \"{}\"\ntop = 3\n",
        repo_path("models/mobilenetv2.toml"),
        repo_path("templates")
    );
    std::fs::write(&config, text).unwrap();
    let mut serve = command();
    serve.arg("serve").arg("--config").arg(&config);
    let server = Server::spawn(serve, tempfile::tempdir().unwrap());
    assert!(server.listening.ends_with("/x/"), "{}", server.listening);

    let base = server.base();
    let page = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("<html lang=\"en\">") && page.contains("/x/goto_uploads_file"));

    let eagle = common::photo("eagle.jpg");
    let (content_type, body) = web_support::multipart(&[
        web_support::field("uid", "taro"),
        web_support::file("eagle.jpg", &eagle),
    ]);
    let response = web_support::http_client()
        .post(format!("{base}/uploads_file"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let uploads = dir.path().join("data");
    assert_eq!(web_support::stored_photos(&uploads), ["taro-eagle.jpg"], "relative to the file");
    let log = web_support::results_log(&uploads);
    assert_eq!(log[0]["top"].as_array().unwrap().len(), 3, "`top` is used");
}

#[tokio::test]
async fn serve_needs_no_configuration_file() {
    common::shared();
    // Exactly as the README tells a teacher to try it, with port 0.
    let mut serve = command();
    serve.args(["serve", "--http", "127.0.0.1:0", "--model", "models/mobilenetv2.toml"]);
    let mut server = Server::spawn(serve, tempfile::tempdir().unwrap());
    let health = reqwest::get(format!("{}/healthz", server.base())).await.unwrap();
    assert_eq!(health.status(), 200);

    // A kept-alive idle connection does not hold up stopping.
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{}/", server.base())).send().await.unwrap().status(), 200);
    server.terminate();
    let mut status = None;
    for _ in 0..100 {
        status = server.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", server.log());
}

#[test]
fn serve_says_what_is_wrong_at_start() {
    let run = |args: &[&str]| {
        let output = command().arg("serve").args(args).output().unwrap();
        (output.status.code(), String::from_utf8(output.stderr).unwrap())
    };

    let (code, stderr) = run(&["--model", "models/mobilenetv2.toml"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no address to listen on"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("none");
    let (code, stderr) = run(&[
        "--http",
        "127.0.0.1:0",
        "--model",
        "models/mobilenetv2.toml",
        "--templates",
        templates.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot read template") && stderr.contains("none"), "{stderr}");

    let not_a_socket = dir.path().join("file.sock");
    std::fs::write(&not_a_socket, "x").unwrap();
    let uploads = dir.path().join("up");
    let (code, stderr) = run(&[
        "--fastcgi",
        not_a_socket.to_str().unwrap(),
        "--model",
        "models/mobilenetv2.toml",
        "--uploads",
        uploads.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("exists and is not a socket"), "{stderr}");
    assert!(Path::new(&not_a_socket).is_file(), "a file that is not a socket is left alone");
}
