//! Every kind of bad input gets its status and a page, in the student's
//! language, that says what went wrong and what to do, and leaves nothing
//! on disk. Driven through the built-in HTTP server.

mod common;
mod web_support;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use web_support::{field, file, http_client, multipart, Part, Start};

/// A PNG that declares `width` x `height` pixels and holds almost nothing.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = 0xFFFF_FFFFu32;
    for &b in kind.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

/// What a bad request must get.
struct Case<'a> {
    what: &'a str,
    content_type: String,
    body: Vec<u8>,
    status: u16,
    says: &'a str,
}

fn case<'a>(what: &'a str, parts: &[Part<'_>], status: u16, says: &'a str) -> Case<'a> {
    let (content_type, body) = multipart(parts);
    Case { what, content_type, body, status, says }
}

#[tokio::test]
async fn each_bad_upload_gets_its_status_and_page_and_leaves_nothing() {
    // A 1 MiB limit keeps the too-big case quick.
    let server = Start::http().config("max_upload_bytes = 1048576\n").start();
    let url = format!("{}/uploads_file", server.base());
    let eagle = common::photo("eagle.jpg");
    let mastiff = common::photo("bull-mastiff.png");
    let long_login = "a".repeat(65);
    let big = vec![0xFFu8; 1024 * 1024 + 1];
    // Damaged in the middle of its pixel data: complete, but wrong.
    let mut corrupt_png = mastiff.clone();
    let middle = corrupt_png.len() / 2;
    corrupt_png[middle..middle + 64].iter_mut().for_each(|b| *b ^= 0x55);
    let tiff = b"II*\0\x08\0\0\0\0\0\0\0\0\0";
    let huge = png_declaring(100_000, 100_000);

    // What the Japanese pages say.
    let no_login = "ログイン名が入力されていません";
    let no_file = "ファイルが選ばれていません";
    let (too_long, control, too_big, empty) =
        ("64 文字まで", "制御文字", "1 MiB までの写真", "空（0 バイト）");
    let mut cases = vec![
        case("no login field", &[file("eagle.jpg", &eagle)], 400, no_login),
        case("empty login", &[field("uid", " "), file("eagle.jpg", &eagle)], 400, no_login),
        case("long login", &[field("uid", &long_login), file("e.jpg", &eagle)], 400, too_long),
        case("control login", &[field("uid", "ta\nro"), file("e.jpg", &eagle)], 400, control),
        case("no file field", &[field("uid", "taro")], 400, no_file),
        case("no file chosen", &[field("uid", "taro"), file("", b"")], 400, no_file),
        case("too big", &[field("uid", "taro"), file("big.jpg", &big)], 413, too_big),
        case(
            "text",
            &[field("uid", "taro"), file("notes.jpg", b"hello\n")],
            415,
            "画像ではありません",
        ),
        case("empty file", &[field("uid", "taro"), file("empty.jpg", b"")], 415, empty),
        case("tiff", &[field("uid", "taro"), file("scan.tif", tiff)], 415, "TIFF 形式"),
        case(
            "truncated jpeg",
            &[field("uid", "taro"), file("cut.jpg", &eagle[..eagle.len() * 6 / 10])],
            422,
            "途中で切れています",
        ),
        case(
            "corrupt png",
            &[field("uid", "taro"), file("bad.png", &corrupt_png)],
            422,
            "壊れていて",
        ),
        case(
            "too many pixels",
            &[field("uid", "taro"), file("bomb.png", &huge)],
            422,
            "80 メガピクセル",
        ),
    ];
    cases.push(Case {
        what: "not multipart",
        content_type: "text/plain".into(),
        body: b"uid=taro".to_vec(),
        status: 400,
        says: "ファイルのアップロードとして送られていません",
    });
    let (content_type, whole) = multipart(&[field("uid", "taro"), file("eagle.jpg", &eagle)]);
    // Every byte the request declares arrives, but the form stops halfway:
    // the sender wrote it so, and resending it the same way will not help.
    cases.push(Case {
        what: "form that ends halfway",
        content_type,
        body: whole[..whole.len() / 2].to_vec(),
        status: 400,
        says: "送られたフォームを読み取れませんでした",
    });

    let client = http_client();
    for case in cases {
        let response = client
            .post(&url)
            .header(CONTENT_TYPE, &case.content_type)
            .body(case.body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let page = response.text().await.unwrap();
        assert!(page.contains("<html lang=\"ja\">"), "{}: {page}", case.what);
        assert!(page.contains(case.says), "{}: {:?} not in {page}", case.what, case.says);
        assert!(page.contains("href=\"/ai/?lang=ja"), "{}: a way back: {page}", case.what);
        // Once the student is known, a button leads straight back to the
        // upload page, as the same student.
        let photo_problem = matches!(case.status, 415 | 422) || case.says == no_file;
        let another = "<form method=\"post\" action=\"/ai/goto_uploads_file?lang=ja\">\n  \
                       <input type=\"hidden\" name=\"uid\" value=\"taro\">";
        assert_eq!(page.contains(another), photo_problem, "{}: {page}", case.what);
        assert_eq!(
            web_support::all_files(&server.uploads()),
            Vec::<String>::new(),
            "{} left files behind",
            case.what
        );
    }

    let log = server.wait_for_log("status=422");
    assert!(log.contains("WARN") && log.contains("request refused"), "{log}");
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_without_reading_them_whole() {
    let server = Start::http().config("max_upload_bytes = 1048576\n").start();
    let url = format!("{}/uploads_file", server.base());
    let client = http_client();

    // Declared too big: refused on the Content-Length alone. The server reads
    // and drops up to twice the limit so that the client, still sending, can
    // read the answer; past that it closes and the client would see a reset.
    // The name in the form's address, as the upload page sends it, brings the
    // button back to the upload page.
    let big = vec![0u8; 2 * 1024 * 1024];
    let (content_type, body) = multipart(&[field("uid", "taro"), file("big.jpg", &big)]);
    let response = client
        .post(format!("{url}?lang=ja&uid=taro"))
        .header(CONTENT_TYPE, &content_type)
        .header(CONTENT_LENGTH, body.len())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let page = response.text().await.unwrap();
    assert!(page.contains("1 MiB"), "{page}");
    let another = "<input type=\"hidden\" name=\"uid\" value=\"taro\">";
    assert!(page.contains("id=\"another\"") && page.contains(another), "{page}");

    // Chunked, no length: refused once the stream passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = client
        .post(format!("{url}?lang=en"))
        .header(CONTENT_TYPE, &content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let page = response.text().await.unwrap();
    assert!(page.contains("The file is too big. Choose a photo of at most 1 MiB."), "{page}");
    assert_eq!(web_support::all_files(&server.uploads()), Vec::<String>::new());
}

#[tokio::test]
async fn an_empty_chunked_upload_is_length_required_not_no_file() {
    let server = Start::http().start();
    let (content_type, _) = multipart(&[]);
    let empty: Vec<Result<Vec<u8>, std::io::Error>> = Vec::new();
    let response = http_client()
        .post(format!("{}/uploads_file", server.base()))
        .header(CONTENT_TYPE, content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(empty)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 411);
    let page = response.text().await.unwrap();
    let no_file = "ファイルが選ばれていません";
    assert!(page.contains("Content-Length") && !page.contains(no_file));
}

#[tokio::test]
async fn bad_login_forms_are_refused() {
    let server = Start::http().start();
    let url = format!("{}/goto_uploads_file", server.base());
    let client = http_client();

    // Longer than the whole login form may be: still a name too long, not a file too big.
    let huge = "x".repeat(20_000);
    let cases: [(&[(&str, &str)], u16, &str); 7] = [
        (&[], 400, "ログイン名が入力されていません"),
        (&[("uid", "")], 400, "ログイン名が入力されていません"),
        (&[("uid", &"x".repeat(65))], 400, "長すぎます"),
        (&[("uid", &huge)], 400, "長すぎます"),
        (&[("uid", "a\tb"), ("lang", "en")], 400, "control characters"),
        (&[("uid", "ta\u{202e}ro"), ("lang", "en")], 400, "invisible formatting"),
        (&[("uid", "ta\u{200b}ro")], 400, "見えない書式文字"),
    ];
    for (form, status, says) in cases {
        let response = client.post(&url).form(form).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{form:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains(says), "{form:?}: {page}");
    }

    let response = client.post(&url).body("uid=taro").send().await.unwrap();
    assert_eq!(response.status(), 400, "a body that is not a form");
    assert!(response.text().await.unwrap().contains("フォームから送られていません"));
}
