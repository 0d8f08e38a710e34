//! A class at once: twenty students uploading at the same moment each see
//! their own name and class, and when the queue is full students are told
//! to wait (503 with Retry-After) instead of queueing without end.

mod common;
mod web_support;

use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use web_support::{field, file, http_client, multipart, Start};

/// Photos whose top-1 class is clear, and that class.
pub const CLEAR_PHOTOS: [(&str, &str); 4] = [
    ("eagle.jpg", "bald eagle"),
    ("fish-bike.jpg", "tricycle"),
    ("bull-mastiff.png", "bull mastiff"),
    ("cat.jpg", "tiger cat"),
];

/// A 4000x3000 PNG that is cheap to send but slow to decode.
fn large_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, ((x + y) / 28) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

#[tokio::test]
async fn twenty_students_at_once_each_see_their_own_result() {
    let server = Start::http().start();
    let base = server.base();
    let origin = base.trim_end_matches("/ai").to_string();

    let students = (0..20).map(|n| {
        let (photo, expected) = CLEAR_PHOTOS[n % CLEAR_PHOTOS.len()];
        let (base, origin) = (base.clone(), origin.clone());
        tokio::spawn(async move {
            let login = format!("student{n:02}");
            let bytes = common::photo(photo);
            let (content_type, body) = multipart(&[field("uid", &login), file(photo, &bytes)]);
            let client = http_client();
            let response = client
                .post(format!("{base}/uploads_file"))
                .header(CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 303, "{login}");
            let location = response.headers()[LOCATION].to_str().unwrap().to_string();
            let page = client.get(format!("{origin}{location}")).send().await.unwrap();
            let page = page.text().await.unwrap();
            assert!(page.contains(&format!("{login} さんの写真")), "{login} sees {page}");
            let first_row = page.split("<tbody>").nth(1).unwrap().split("</tr>").next().unwrap();
            assert!(first_row.contains(expected), "{login} ({photo}): {first_row}");
            for other in (0..20).filter(|&o| o != n) {
                assert!(!page.contains(&format!("student{other:02}")), "{login} sees another");
            }
            login
        })
    });
    let mut done = Vec::new();
    for student in students.collect::<Vec<_>>() {
        done.push(student.await.unwrap());
    }
    assert_eq!(done.len(), 20);
    assert_eq!(web_support::stored_photos(&server.uploads()).len(), 20);
    assert_eq!(web_support::results_log(&server.uploads()).len(), 20);
}

#[tokio::test]
async fn a_full_queue_asks_students_to_wait() {
    // One worker and room for one waiting upload: the rest must be refused.
    let server = Start::http().config("workers = 1\nqueue = 1\n").start();
    let png = large_png();
    let (content_type, body) = multipart(&[field("uid", "taro"), file("big.png", &png)]);

    let uploads = (0..8).map(|_| {
        let url = format!("{}/uploads_file", server.base());
        let (content_type, body) = (content_type.clone(), body.clone());
        tokio::spawn(async move {
            let response = http_client()
                .post(url)
                .header(CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get(RETRY_AFTER).cloned();
            (response.status().as_u16(), retry_after, response.text().await.unwrap())
        })
    });
    let mut answers = Vec::new();
    for upload in uploads.collect::<Vec<_>>() {
        answers.push(upload.await.unwrap());
    }

    let accepted = answers.iter().filter(|(status, _, _)| *status == 303).count();
    let busy: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 503).collect();
    assert_eq!(accepted + busy.len(), 8, "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    assert!(accepted >= 2, "the running and the waiting upload are classified");
    assert!(!busy.is_empty(), "eight at once cannot fit one worker and a queue of one");
    for (_, retry_after, page) in &busy {
        assert_eq!(retry_after.as_ref().unwrap(), "5");
        assert!(page.contains("混み合っています") && page.contains("5 秒"), "{page}");
    }
    assert_eq!(web_support::stored_photos(&server.uploads()).len(), accepted);
    assert_eq!(web_support::results_log(&server.uploads()).len(), accepted);
}
