//! The mod_fcgid variant (`apache/ai-fcgid.conf`): Apache starts the worker
//! itself and hands it its socket as file descriptor 0. The student flow,
//! an upload far above mod_fcgid's default request limit, and the pages of
//! ours for what Apache refuses.

mod common;

use common::apache::{self, Apache, Options, APACHE_ERROR_PAGE};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread")]
async fn apache_starts_the_worker_and_students_get_their_results() {
    let apache = Apache::start_with("fcgid", Options { fcgid: true, ..Options::default() });
    let client = apache::client();

    let result = apache::student_flow(&client, &apache, "fcgid-student", "eagle.jpg").await;
    assert_eq!(apache::top1(&result), "bald eagle");

    // mod_fcgid's default FcgidMaxRequestLen (128 KiB) would refuse this one.
    let bull = common::photo("bull-mastiff.png");
    assert!(bull.len() > 128 << 10);
    let result = apache::student_flow(&client, &apache, "fcgid-png", "bull-mastiff.png").await;
    assert_eq!(apache::top1(&result), "bull mastiff");

    // Two students at once: mod_fcgid gives each worker process one request
    // at a time, so one waits for a process or gets a second one.
    let (a, b) = tokio::join!(
        apache::student_flow(&client, &apache, "fcgid-a", "fish-bike.jpg"),
        apache::student_flow(&client, &apache, "fcgid-b", "cat.jpg"),
    );
    assert_eq!((apache::top1(&a), apache::top1(&b)), ("tricycle".into(), "tiger cat".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn what_apache_refuses_gets_our_pages_under_fcgid_too() {
    let apache =
        Apache::start_with("fcgid_refusals", Options { fcgid: true, ..Options::default() });
    let client = apache::client();

    let form = apache::photo_form("far-too-big", "huge.jpg", vec![0xAB; 40 << 20]);
    let response = client.post(apache.url("uploads_file")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().await.unwrap().contains(APACHE_ERROR_PAGE));

    let form = apache::chunked_photo_form("chunked");
    let response = client.post(apache.url("uploads_file")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::LENGTH_REQUIRED);
    assert!(response.text().await.unwrap().contains(APACHE_ERROR_PAGE));
}
