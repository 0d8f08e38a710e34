//! Students through the real Apache, configured as shipped in `apache/`
//! (mod_proxy_fcgi to the worker's unix socket), over HTTPS: the whole flow
//! with each photo, large and oversized uploads, an upload without a length,
//! the site's other folder, the HTTP redirect, and a class at once.

mod common;

use common::apache::{self, Apache, APACHE_ERROR_PAGE};
use reqwest::StatusCode;

/// The shared photos and the class the MobileNetV2 model gives each.
const PHOTOS: [(&str, &str); 4] = [
    ("eagle.jpg", "bald eagle"),
    ("fish-bike.jpg", "tricycle"),
    ("bull-mastiff.png", "bull mastiff"),
    ("cat.jpg", "tiger cat"),
];

#[tokio::test(flavor = "multi_thread")]
async fn each_photo_goes_through_the_whole_student_flow() {
    let apache = Apache::start("each_photo");
    let client = apache::client();

    for (photo, class) in PHOTOS {
        let uid = format!("student-{}", photo.replace('.', "-"));
        let result = apache::student_flow(&client, &apache, &uid, photo).await;
        assert_eq!(apache::top1(&result), class, "top-1 of {photo}");
    }

    // The worker saw each student's own address, as Apache's REMOTE_ADDR.
    let log = apache.worker_log();
    let line = log.lines().find(|l| l.contains("student-eagle-jpg") && l.contains("303"));
    let line = line.unwrap_or_else(|| panic!("no log line for the eagle upload in:\n{log}"));
    assert!(line.contains("127.0.0.1"), "the client address is not in: {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_photo_of_several_megabytes_is_classified() {
    let apache = Apache::start("several_megabytes");
    let client = apache::client();

    let photo = noisy_jpeg(2600, 1950);
    assert!((4 << 20..20 << 20).contains(&photo.len()), "made {} bytes", photo.len());
    let result_url = apache::upload(&client, &apache, "big-photo", "big.jpg", photo).await;
    let result = client.get(&result_url).send().await.unwrap();
    assert_eq!(result.status(), StatusCode::OK);
    assert!(result.text().await.unwrap().contains("big-photo"));
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_over_the_limit_get_a_413_page_not_a_bare_error() {
    let apache = Apache::start("over_the_limit");
    let client = apache::client();

    // Over the application's 20 MiB but within what Apache passes on: the
    // application's own page, which states its limit.
    let form = apache::photo_form("too-big", "big.jpg", vec![0xAB; 21 << 20]);
    let response = client.post(apache.url("uploads_file")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let page = response.text().await.unwrap();
    assert!(!page.contains(APACHE_ERROR_PAGE), "expected the application's page:\n{page}");
    assert!(page.contains("20"), "the page should state the 20 MiB limit:\n{page}");

    // Over what Apache passes on: refused by Apache, with our page.
    let form = apache::photo_form("far-too-big", "huge.jpg", vec![0xAB; 40 << 20]);
    let response = client.post(apache.url("uploads_file")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let page = response.text().await.unwrap();
    assert!(page.contains(APACHE_ERROR_PAGE), "expected our Apache 413 page:\n{page}");
    let (japanese, english) = ("写真が大きすぎます", "The photo is too large");
    assert!(page.contains(japanese) && page.contains(english));

    // Neither left anything behind.
    assert_eq!(stored_photos(&apache), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_upload_gets_a_clear_411_page() {
    let apache = Apache::start("chunked");
    let client = apache::client();

    let form = apache::chunked_photo_form("chunked");
    let response = client.post(apache.url("uploads_file")).multipart(form).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::LENGTH_REQUIRED);
    let page = response.text().await.unwrap();
    assert!(page.contains(APACHE_ERROR_PAGE), "expected our 411 page:\n{page}");
    assert!(page.contains("Content-Length"), "the page should say what to send:\n{page}");
    assert_eq!(stored_photos(&apache), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rest_of_the_site_stays_apaches_and_http_goes_to_https() {
    let apache = Apache::start("site");
    let client = apache::client();

    let kougi = client.get(apache.https("/kougi/")).send().await.unwrap();
    assert_eq!(kougi.status(), StatusCode::OK);
    assert!(kougi.text().await.unwrap().contains("served by Apache itself"));

    let redirect = client.get(apache.http("/ai/?lang=en")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(redirect.headers()["location"], apache.url("?lang=en").as_str());

    // /ai without its slash goes to /ai/, whose pages carry HSTS.
    let bare = client.get(apache.https("/ai")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(bare.headers()["location"], apache.url("").as_str());
    let login = client.get(apache.url("")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.headers()["strict-transport-security"].to_str().unwrap().contains("max-age"));
    assert_eq!(login.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_students_at_once_each_get_their_own_result() {
    let apache = std::sync::Arc::new(Apache::start("twenty_students"));
    let client = apache::client();

    let students = (0..20).map(|i| {
        let (apache, client) = (apache.clone(), client.clone());
        let (photo, class) = PHOTOS[i % PHOTOS.len()];
        tokio::spawn(async move {
            let uid = format!("class-member-{i:02}");
            let result = apache::student_flow(&client, &apache, &uid, photo).await;
            assert_eq!(apache::top1(&result), class, "{uid} uploaded {photo}");
        })
    });
    for student in futures_util::future::join_all(students).await {
        student.unwrap();
    }
}

/// The photos the worker kept (not its hidden results or the results log).
fn stored_photos(apache: &Apache) -> Vec<String> {
    let entries = std::fs::read_dir(apache.uploads()).unwrap();
    let names = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| !n.starts_with('.') && n != "results.jsonl").collect()
}

/// A JPEG of random pixels: it barely compresses, so a few megapixels make
/// several megabytes.
fn noisy_jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 90)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    bytes
}
