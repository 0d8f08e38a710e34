//! The student's whole flow through the built-in HTTP server, with real
//! photos and the real model: login page, upload page, upload, result page,
//! the photo itself, what was stored and logged; languages, escaping,
//! unknown paths and the JSON API.

mod common;
mod web_support;

use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_TYPE, LOCATION};
use web_support::{field, file, http_client, multipart, result_id, Start};

/// Photos from the shared data and the top-1 class MobileNetV2 gives them.
const PHOTOS: [(&str, &str); 3] = [
    ("eagle.jpg", "bald eagle"),
    ("fish-bike.jpg", "tricycle"),
    ("bull-mastiff.png", "bull mastiff"),
];

async fn upload(
    base: &str,
    login: &str,
    name: &str,
    bytes: &[u8],
    lang: Option<&str>,
) -> reqwest::Response {
    let mut parts = vec![field("uid", login), file(name, bytes)];
    if let Some(lang) = lang {
        parts.push(field("lang", lang));
    }
    let (content_type, body) = multipart(&parts);
    http_client()
        .post(format!("{base}/uploads_file"))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_photo_goes_from_login_to_its_result_page() {
    let server = Start::http().start();
    let base = server.base();
    assert!(base.ends_with("/ai"), "{base}");
    let client = http_client();

    let login = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let page = login.text().await.unwrap();
    assert!(page.contains("<html lang=\"ja\">"), "{page}");
    assert!(page.contains("action=\"/ai/goto_uploads_file?lang=ja\""), "{page}");
    assert!(page.contains("name=\"uid\""), "{page}");

    let upload_page = client
        .post(format!("{base}/goto_uploads_file"))
        .form(&[("uid", "taro"), ("lang", "ja")])
        .send()
        .await
        .unwrap();
    assert_eq!(upload_page.status(), 200);
    let page = upload_page.text().await.unwrap();
    assert!(page.contains("taro さん"), "{page}");
    assert!(page.contains("enctype=\"multipart/form-data\""), "{page}");
    assert!(page.contains("action=\"/ai/uploads_file?lang=ja&amp;uid=taro\""), "{page}");
    assert!(page.contains("value=\"taro\""), "{page}");
    assert!(page.contains("20 MiB"), "the limit is stated: {page}");

    for (number, (name, expected)) in PHOTOS.iter().enumerate() {
        let bytes = common::photo(name);
        let response = upload(&base, "taro", name, &bytes, None).await;
        assert_eq!(response.status(), 303, "{name}: {}", response.text().await.unwrap());
        let location = response.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(
            location.starts_with("/ai/result/") && location.ends_with("?lang=ja"),
            "{location}"
        );
        let id = result_id(&location);

        let origin = base.trim_end_matches("/ai");
        let result = client.get(format!("{origin}{location}")).send().await.unwrap();
        assert_eq!(result.status(), 200);
        let page = result.text().await.unwrap();
        assert!(page.contains("taro さんの写真"), "{page}");
        let first_row = page.split("<tbody>").nth(1).unwrap().split("</tr>").next().unwrap();
        assert!(first_row.contains(expected), "{name}: first row {first_row}");
        assert_eq!(page.matches("<td class=\"number\">").count(), 20, "10 ranks and 10 percents");
        assert!(page.contains("MobileNetV2"), "the model is named: {page}");
        assert!(page.contains("href=\"/ai/?lang=ja&amp;uid=taro\""), "back: {page}");
        let another = "<form method=\"post\" action=\"/ai/goto_uploads_file?lang=ja\">\n  \
                       <input type=\"hidden\" name=\"uid\" value=\"taro\">\n  \
                       <input type=\"hidden\" name=\"lang\" value=\"ja\">";
        assert!(page.contains(another), "another photo: {page}");
        let photo_url = format!("/ai/photo/{id}");
        assert!(page.contains(&format!("src=\"{photo_url}\"")), "{page}");

        let photo = client.get(format!("{origin}{photo_url}")).send().await.unwrap();
        assert_eq!(photo.status(), 200);
        let media_type = if name.ends_with(".png") { "image/png" } else { "image/jpeg" };
        assert_eq!(photo.headers()[CONTENT_TYPE], media_type);
        assert!(photo.bytes().await.unwrap() == bytes, "{name}: the photo served differs");

        let stored = server.uploads().join(format!("taro-{name}"));
        assert_eq!(std::fs::read(&stored).unwrap(), bytes, "{}", stored.display());

        let log = web_support::results_log(&server.uploads());
        assert_eq!(log.len(), number + 1);
        let line = &log[number];
        assert_eq!(line["login"], "taro");
        assert_eq!(line["file"], format!("taro-{name}"));
        assert_eq!(line["id"], id.as_str());
        assert_eq!(line["model"], "mobilenetv2");
        assert_eq!(line["top"].as_array().unwrap().len(), 10);
        assert_eq!(line["top"][0]["label"], *expected);
        assert!(line["millis"].as_f64().unwrap() > 0.0);
        assert!(line["time"].as_str().unwrap().len() >= 20);
    }

    let log = server.wait_for_log("status=303");
    assert!(log.contains("request method=POST path=/ai/uploads_file status=303 login=\"taro\""));
    assert!(log.contains("top1=\"bald eagle\""), "{log}");
    assert!(log.contains("client=127.0.0.1"), "{log}");
}

#[tokio::test]
async fn japanese_names_are_kept_and_copies_never_overwrite() {
    let server = Start::http().start();
    let cat = common::photo("cat.jpg");
    let eagle = common::photo("eagle.jpg");
    for bytes in [&cat, &eagle] {
        let response = upload(&server.base(), "花子", "猫.jpg", bytes, None).await;
        assert_eq!(response.status(), 303);
    }
    // A name whose extension lies gets the real one.
    let response = upload(&server.base(), "花子", "写真.gif", &cat, None).await;
    assert_eq!(response.status(), 303);

    let photos = web_support::stored_photos(&server.uploads());
    assert_eq!(photos, ["花子-写真.jpg", "花子-猫-2.jpg", "花子-猫.jpg"]);
    assert_eq!(std::fs::read(server.uploads().join("花子-猫.jpg")).unwrap(), cat);
    assert_eq!(std::fs::read(server.uploads().join("花子-猫-2.jpg")).unwrap(), eagle);
}

#[tokio::test]
async fn a_full_width_login_is_the_same_student() {
    let server = Start::http().start();
    let eagle = common::photo("eagle.jpg");
    let response = upload(&server.base(), "\u{3000}ｔａｒｏ", "eagle.jpg", &eagle, None).await;
    assert_eq!(response.status(), 303);

    assert_eq!(web_support::stored_photos(&server.uploads()), ["taro-eagle.jpg"]);
    let log = web_support::results_log(&server.uploads());
    assert_eq!(log[0]["login"], "taro");
}

#[tokio::test]
async fn a_real_client_chunked_upload_is_classified() {
    let server = Start::http().start();
    let eagle = common::photo("eagle.jpg");

    // reqwest's own multipart encoder, sent with a known length.
    let form = reqwest::multipart::Form::new()
        .text("uid", "jiro")
        .part("file", reqwest::multipart::Part::bytes(eagle.clone()).file_name("eagle.jpg"));
    let response = http_client()
        .post(format!("{}/uploads_file", server.base()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    // The same body as a stream: chunked, no Content-Length.
    let (content_type, body) = multipart(&[field("uid", "jiro"), file("eagle.jpg", &eagle)]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let response = http_client()
        .post(format!("{}/uploads_file", server.base()))
        .header(CONTENT_TYPE, content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        web_support::stored_photos(&server.uploads()),
        ["jiro-eagle-2.jpg", "jiro-eagle.jpg"]
    );
}

#[tokio::test]
async fn pages_come_in_the_language_asked_for() {
    let server = Start::http().start();
    let base = server.base();
    let client = http_client();
    let get = |url: String, accept: Option<&'static str>| {
        let mut request = client.get(url);
        if let Some(accept) = accept {
            request = request.header(ACCEPT_LANGUAGE, accept);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };

    let japanese = get(format!("{base}/"), None).await;
    assert!(japanese.contains("<html lang=\"ja\">") && japanese.contains("ログイン名"));
    assert!(japanese.contains("href=\"/ai/?lang=en\""), "switch link: {japanese}");

    let english = get(format!("{base}/?lang=en"), None).await;
    assert!(english.contains("<html lang=\"en\">") && english.contains("Login name"));
    assert!(english.contains("action=\"/ai/goto_uploads_file?lang=en\""), "{english}");
    assert!(english.contains("href=\"/ai/?lang=ja\""), "switch link: {english}");

    let browser = get(format!("{base}/"), Some("en-GB,en;q=0.9,ja;q=0.5")).await;
    assert!(browser.contains("<html lang=\"en\">"), "{browser}");
    let chosen = get(format!("{base}/?lang=ja"), Some("en-GB,en;q=0.9")).await;
    assert!(chosen.contains("<html lang=\"ja\">"), "the student's choice wins");

    // The upload page keeps the language and offers the other through a form.
    let page = client
        .post(format!("{base}/goto_uploads_file"))
        .form(&[("uid", "taro"), ("lang", "en")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("taro, choose a photo"), "{page}");
    assert!(page.contains("name=\"lang\" value=\"ja\""), "switch form: {page}");

    // The upload's redirect, the result and error pages carry it on.
    let response =
        upload(&base, "taro", "eagle.jpg", &common::photo("eagle.jpg"), Some("en")).await;
    let location = response.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(location.ends_with("?lang=en"), "{location}");
    let origin = base.trim_end_matches("/ai");
    let result = get(format!("{origin}{location}"), None).await;
    assert!(
        result.contains("taro&#x27;s photo") && result.contains("Try another photo"),
        "{result}"
    );
    assert!(result.contains("/ai/?lang=en&amp;uid=taro"), "{result}");
    let switch = format!("href=\"/ai/result/{}?lang=ja\"", result_id(&location));
    assert!(result.contains(&switch), "{result}");

    let error = upload(&base, "taro", "notes.jpg", b"just text", Some("en")).await;
    assert_eq!(error.status(), 415);
    let text = error.text().await.unwrap();
    assert!(text.contains("This file is not an image"), "{text}");
}

#[tokio::test]
async fn everything_typed_is_escaped() {
    let server = Start::http().start();
    let base = server.base();
    let evil = "<script>alert(\"x\")</script>";

    let page = http_client()
        .post(format!("{base}/goto_uploads_file"))
        .form(&[("uid", evil)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), "{page}");

    let login = http_client().get(format!("{base}/?uid=%3Cb%3Ehi")).send().await.unwrap();
    let text = login.text().await.unwrap();
    assert!(text.contains("value=\"&lt;b&gt;hi\"") && !text.contains("<b>hi"), "{text}");
    // A name that would be refused does not fill the field.
    let login = http_client().get(format!("{base}/?uid=a%00b")).send().await.unwrap();
    let text = login.text().await.unwrap();
    assert!(text.contains("name=\"uid\" value=\"\"") && !text.contains('\0'), "{text}");

    let response = upload(&base, evil, "<img src=x>.jpg", &common::photo("eagle.jpg"), None).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()[LOCATION].to_str().unwrap().to_string();
    let origin = base.trim_end_matches("/ai");
    let result = http_client().get(format!("{origin}{location}")).send().await.unwrap();
    let text = result.text().await.unwrap();
    assert!(!text.contains("<script>") && !text.contains("<img src=x>"), "{text}");
    assert!(text.contains("&lt;script&gt;"), "{text}");

    let photos = web_support::stored_photos(&server.uploads());
    assert_eq!(photos.len(), 1);
    assert!(!photos[0].contains(['/', '<', '>', '"']), "{photos:?}");
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_405() {
    let server = Start::http().start();
    let base = server.base();
    let origin = base.trim_end_matches("/ai");
    let client = http_client();

    for path in [
        "/ai/nope",
        "/elsewhere",
        "/ai/result/0123456789abcdef0123456789abcdef",
        "/ai/photo/0123456789abcdef0123456789abcdef",
        "/ai/result/..%2F..%2Fresults.jsonl",
        "/aix/healthz",
    ] {
        let response = client.get(format!("{origin}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("ページが見つかりません"), "{path}: {page}");
    }

    let response = client.get(format!("{base}/uploads_file")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert!(response.text().await.unwrap().contains("その方法では開けません"));

    let response = client.post(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");

    let response = client.get(base.clone()).send().await.unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()[LOCATION], "/ai/");

    let get = client.get(format!("{base}/")).send().await.unwrap();
    let length = get.text().await.unwrap().len().to_string();
    let response = client.head(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], length.as_str(), "HEAD's length");

    // A hand-made long path is cut short in the log line.
    let long = format!("/ai/{}", "x".repeat(20_000));
    let response = client.get(format!("{origin}{long}")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let log = server.wait_for_log("(20004 bytes)");
    let line = log.lines().find(|l| l.contains("(20004 bytes)")).unwrap();
    assert!(line.len() < 400, "{line}");
}

#[tokio::test]
async fn programs_get_json_and_health() {
    let server = Start::http().start();
    let base = server.base();
    let client = http_client();

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok mobilenetv2\n");

    let (content_type, body) = multipart(&[file("eagle.jpg", &common::photo("eagle.jpg"))]);
    let response = client
        .post(format!("{base}/api/classify"))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(json["image"], "eagle.jpg");
    assert_eq!(json["model"], "mobilenetv2");
    assert_eq!(json["top"].as_array().unwrap().len(), 10);
    assert_eq!(json["top"][0]["rank"], 1);
    assert_eq!(json["top"][0]["index"], 22);
    assert_eq!(json["top"][0]["label"], "bald eagle");
    assert!(json["inference_millis"].as_f64().unwrap() > 0.0);

    // The API keeps no photo, but the classification is in the results log.
    assert!(web_support::stored_photos(&server.uploads()).is_empty());
    let log = web_support::results_log(&server.uploads());
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["file"], serde_json::Value::Null);
    assert_eq!(log[0]["top"][0]["label"], "bald eagle");

    let (content_type, body) = multipart(&[file("notes.jpg", b"not a photo")]);
    let response = client
        .post(format!("{base}/api/classify?lang=en"))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let json: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(json["code"], "not_image");
    assert_eq!(json["status"], 415);
    assert!(json["error"].as_str().unwrap().contains("not an image"), "{json}");
}
