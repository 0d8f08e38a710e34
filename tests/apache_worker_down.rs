//! The worker stops while Apache keeps running: students get our 503 page at
//! once, the rest of the site is unaffected, and the worker's return is used
//! by the very next upload without touching Apache.

mod common;

use std::time::{Duration, Instant};

use common::apache::{self, Apache, APACHE_ERROR_PAGE};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_gets_our_503_page_and_its_return_is_used_at_once() {
    let apache = Apache::start("worker_down");
    let client = apache::client();
    apache::student_flow(&client, &apache, "before", "eagle.jpg").await;

    apache.stop_worker(&client).await;

    for (what, request) in [
        ("login page", client.get(apache.url(""))),
        ("result page", client.get(apache.url("result/0123456789abcdef0123456789abcdef"))),
        (
            "upload",
            client.post(apache.url("uploads_file")).multipart(apache::photo_form(
                "during",
                "eagle.jpg",
                common::photo("eagle.jpg"),
            )),
        ),
    ] {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(took < Duration::from_secs(2), "{what}: 503 took {took:?}");
        assert_eq!(response.headers()["retry-after"], "30", "{what}");
        let page = response.text().await.unwrap();
        assert!(page.contains(APACHE_ERROR_PAGE), "{what}: expected our 503 page:\n{page}");
        let unavailable = "一時的に利用できません";
        assert!(page.contains(unavailable), "{what}: Japanese text missing");
        assert!(page.contains("not available right now"), "{what}: English text missing");
    }

    let kougi = client.get(apache.https("/kougi/")).send().await.unwrap();
    assert_eq!(kougi.status(), StatusCode::OK, "/kougi/ while the worker is down");

    // start_worker returns as soon as /ai/healthz answers through Apache,
    // which must use the worker as soon as it listens again: not after a
    // retry period (ProxyPass retry=0; the default is 60 s on Apache versions
    // that shut a worker out after failed connections), nor after a reload.
    let started = Instant::now();
    apache.start_worker(&client).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "the worker took {took:?} to be reachable again");
    let result = apache::student_flow(&client, &apache, "after", "fish-bike.jpg").await;
    assert_eq!(apache::top1(&result), "tricycle");
}
