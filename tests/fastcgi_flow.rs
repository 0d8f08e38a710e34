//! The FastCGI adapter as Apache drives it: SCRIPT_NAME and PATH_INFO, the
//! client's address, many connections at once, uploads without a length,
//! unix sockets (mode, stale file, removal), an inherited listening socket,
//! and a clean stop on SIGTERM that finishes the request in flight.

mod common;
mod web_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use web_support::{fastcgi, field, file, multipart, result_id, FcgiRequest, Server, Start};

const PHOTOS: [(&str, &str); 3] = [
    ("eagle.jpg", "bald eagle"),
    ("fish-bike.jpg", "tricycle"),
    ("bull-mastiff.png", "bull mastiff"),
];

fn text(response: &http::Response<Vec<u8>>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}

async fn upload(address: &str, login: &str, name: &str, bytes: &[u8]) -> http::Response<Vec<u8>> {
    let (content_type, body) = multipart(&[field("uid", login), file(name, bytes)]);
    fastcgi(address, &FcgiRequest::post("/uploads_file", &content_type, &body)).await
}

#[tokio::test]
async fn the_whole_flow_over_fastcgi() {
    let server = Start::fastcgi().start();
    let address = server.fastcgi_address();
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let login = fastcgi(&address, &FcgiRequest::get("/")).await;
    assert_eq!(login.status(), 200);
    assert!(text(&login).contains("action=\"/ai/goto_uploads_file?lang=ja\""), "{}", text(&login));

    let form = b"uid=taro&lang=ja";
    let request =
        FcgiRequest::post("/goto_uploads_file", "application/x-www-form-urlencoded", form);
    let page = fastcgi(&address, &request).await;
    assert_eq!(page.status(), 200);
    assert!(text(&page).contains("taro さん"));

    for (name, expected) in PHOTOS {
        let bytes = common::photo(name);
        let response = upload(&address, "taro", name, &bytes).await;
        assert_eq!(response.status(), 303, "{name}: {}", text(&response));
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let id = result_id(&location);

        let result = fastcgi(&address, &FcgiRequest::get(&format!("/result/{id}"))).await;
        assert_eq!(result.status(), 200);
        let first_row = text(&result).split("<tbody>").nth(1).unwrap().to_string();
        let first_row = first_row.split("</tr>").next().unwrap();
        assert!(first_row.contains(expected), "{name}: {first_row}");

        let photo = fastcgi(&address, &FcgiRequest::get(&format!("/photo/{id}"))).await;
        assert_eq!(photo.status(), 200);
        assert!(photo.body() == &bytes, "{name}: the photo served differs");
        let stored = std::fs::read(server.uploads().join(format!("taro-{name}"))).unwrap();
        assert!(stored == bytes, "{name}: the stored file differs");
    }
    assert_eq!(web_support::results_log(&server.uploads()).len(), 3);

    let log = server.wait_for_log("top1=\"bull mastiff\"");
    assert!(log.contains("path=/ai/uploads_file status=303 login=\"taro\""), "{log}");
    assert!(log.contains("client=192.0.2.10"), "REMOTE_ADDR is logged: {log}");
}

#[tokio::test]
async fn twenty_students_at_once_over_fastcgi() {
    let server = Start::fastcgi().start();
    let address = server.fastcgi_address();
    let clear = [
        ("eagle.jpg", "bald eagle"),
        ("fish-bike.jpg", "tricycle"),
        ("bull-mastiff.png", "bull mastiff"),
        ("cat.jpg", "tiger cat"),
    ];
    let students = (0..20).map(|n| {
        let address = address.clone();
        let (photo, expected) = clear[n % clear.len()];
        tokio::spawn(async move {
            let login = format!("学生{n:02}");
            let response = upload(&address, &login, photo, &common::photo(photo)).await;
            assert_eq!(response.status(), 303, "{login}: {}", text(&response));
            let id = result_id(response.headers()["location"].to_str().unwrap());
            let result = fastcgi(&address, &FcgiRequest::get(&format!("/result/{id}"))).await;
            let page = text(&result);
            assert!(page.contains(&format!("{login} さんの写真")), "{login}: {page}");
            let first_row = page.split("<tbody>").nth(1).unwrap().split("</tr>").next().unwrap();
            assert!(first_row.contains(expected), "{login} ({photo}): {first_row}");
        })
    });
    for student in students.collect::<Vec<_>>() {
        student.await.unwrap();
    }
    assert_eq!(web_support::stored_photos(&server.uploads()).len(), 20);
}

#[tokio::test]
async fn uploads_without_a_length_are_classified_or_refused_clearly() {
    let server = Start::fastcgi().config("max_upload_bytes = 1048576\n").start();
    let address = server.fastcgi_address();
    let eagle = common::photo("eagle.jpg");
    let (content_type, body) = multipart(&[field("uid", "taro"), file("eagle.jpg", &eagle)]);

    // A chunked upload Apache passed on without CONTENT_LENGTH: classified.
    let mut request = FcgiRequest::post("/uploads_file", &content_type, &body);
    request.content_length = None;
    request.headers.push(("Transfer-Encoding", "chunked"));
    assert_eq!(fastcgi(&address, &request).await.status(), 303);

    // One whose body did not arrive: 411, never "no file chosen".
    let mut request = FcgiRequest::post("/uploads_file", &content_type, b"");
    request.content_length = None;
    request.headers.push(("Transfer-Encoding", "chunked"));
    let response = fastcgi(&address, &request).await;
    assert_eq!(response.status(), 411);
    let page = text(&response);
    let no_file = "ファイルが選ばれていません";
    assert!(page.contains("Content-Length") && !page.contains(no_file));

    // Declared over the limit: 413 with the limit on the page.
    let big = vec![0u8; 2 * 1024 * 1024];
    let (content_type, body) = multipart(&[field("uid", "taro"), file("big.jpg", &big)]);
    let mut request = FcgiRequest::post("/uploads_file", &content_type, &body);
    request.query = "lang=en";
    let response = fastcgi(&address, &request).await;
    assert_eq!(response.status(), 413);
    assert!(text(&response).contains("at most 1 MiB"), "{}", text(&response));

    assert_eq!(web_support::stored_photos(&server.uploads()), ["taro-eagle.jpg"]);
}

#[tokio::test]
async fn a_unix_socket_gets_its_mode_replaces_a_stale_one_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fcgi.sock");
    // A socket file left by a server that died.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let mut server = Start::fastcgi()
        .address(socket.to_str().unwrap())
        .config("socket_mode = \"0600\"\n")
        .start();
    assert_eq!(server.listening, format!("fastcgi {}", socket.display()));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let health = fastcgi(socket.to_str().unwrap(), &FcgiRequest::get("/healthz")).await;
    assert_eq!(health.status(), 200);
    assert_eq!(text(&health), "ok mobilenetv2\n");

    // A second server on the same path is refused: that socket is alive.
    let uploads = tempfile::tempdir().unwrap();
    let second = web_support::command()
        .args(["serve", "--model", "models/mobilenetv2.toml", "--fastcgi"])
        .arg(&socket)
        .arg("--uploads")
        .arg(uploads.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another server is already listening"), "{stderr}");
    let health = fastcgi(socket.to_str().unwrap(), &FcgiRequest::get("/healthz")).await;
    assert_eq!(health.status(), 200, "the first server still answers");

    server.terminate();
    let status = wait_for_exit(&mut server);
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(!socket.exists(), "the socket file is removed on exit");
}

#[tokio::test]
async fn an_inherited_listening_socket_is_served() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);

    let uploads = tempfile::tempdir().unwrap();
    let mut command = web_support::command();
    command
        .args(["serve", "--fastcgi", "fd:3", "--model", "models/mobilenetv2.toml", "--uploads"])
        .arg(uploads.path().join("up"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Server::spawn(command, uploads);
    drop(listener);
    assert_eq!(server.listening, format!("fastcgi 127.0.0.1:{port}"));

    let address = format!("127.0.0.1:{port}");
    let health = fastcgi(&address, &FcgiRequest::get("/healthz")).await;
    assert_eq!(health.status(), 200);
    let response = upload(&address, "taro", "eagle.jpg", &common::photo("eagle.jpg")).await;
    assert_eq!(response.status(), 303);
}

// Several threads: the upload runs on one while the test waits on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    // Debug logging says when the request has arrived.
    let dir = tempfile::tempdir().unwrap();
    let log_config = dir.path().join("log4rs.yaml");
    std::fs::write(
        &log_config,
        "appenders:\n  stderr:\n    kind: console\n    target: stderr\nroot:\n  level: info\n  \
         appenders: [stderr]\nloggers:\n  imagenet_classroom:\n    level: debug\n",
    )
    .unwrap();
    let log_config = log_config.to_str().unwrap();
    let mut server = Start::fastcgi().args(&["--workers", "1", "--log-config", log_config]).start();
    let address = server.fastcgi_address();

    // A large picture takes a while to decode: it is still in flight when
    // the signal arrives.
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, ((x + y) / 28) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let in_flight = {
        let address = address.clone();
        tokio::spawn(async move { upload(&address, "taro", "big.png", &png).await })
    };
    server.wait_for_log("request started method=POST path=/ai/uploads_file");
    server.terminate();

    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 303, "{}", text(&response));
    let status = wait_for_exit(&mut server);
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopping: finishing 1 connection(s)"), "it was in flight: {log}");
    let (stopping, answered) = (log.find("stopping:").unwrap(), log.find("status=303").unwrap());
    assert!(stopping < answered, "answered after the signal: {log}");
    assert!(std::net::TcpStream::connect(&address).is_err(), "no longer listening");
    assert_eq!(web_support::stored_photos(&server.uploads()), ["taro-big.png"]);
}

fn wait_for_exit(server: &mut Server) -> std::process::ExitStatus {
    for _ in 0..400 {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not exit within 20 s of SIGTERM:\n{}", server.log());
}
