//! A student's visit in a real browser: headless Chromium, through the real
//! Apache over HTTPS (self-signed certificate), types a login name, chooses a
//! photo, uploads it, reads the result and goes on to another photo; and the
//! browser's Back button from a result, against the built-in server. A
//! screenshot of each page is left in `target/test-output/browser/`.

mod common;
mod web_support;

use std::path::Path;
use std::time::Duration;

use common::apache::{self, Apache};
use common::chromium::{self, ChromeDriver};
use thirtyfour::prelude::*;
use thirtyfour::testing::run_browser_test;

const UID: &str = "browser-student";

#[tokio::test(flavor = "multi_thread")]
async fn a_student_uploads_a_photo_in_chromium_and_tries_another() {
    let apache = Apache::start("browser");
    let out = apache::output_dir("browser");
    let profile = tempfile::tempdir().unwrap();
    let chromedriver = ChromeDriver::start(&out.join("chromedriver.log"));
    // chromedriver takes only canonical paths for a file input.
    let photo = std::fs::canonicalize(common::shared_file("images/eagle.jpg")).unwrap();

    let session = WebDriver::new(chromedriver.url.clone(), chromium::capabilities(profile.path()));
    let outcome =
        run_browser_test(
            session,
            |driver| async move { visit(&driver, &apache, &photo, &out).await },
        )
        .await;
    if let Err(e) = outcome {
        panic!("the browser visit failed: {e}");
    }
}

async fn visit(
    driver: &WebDriver,
    apache: &Apache,
    photo: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    // The login page, over HTTPS through Apache.
    driver.goto(apache.url("")).await?;
    let uid = driver.query(By::Id("uid")).first().await?;
    driver.screenshot(&out.join("1-login.png")).await?;
    uid.send_keys(UID).await?;
    driver.find(By::Id("next")).await?.click().await?;

    // The upload page greets the student by name.
    let file = driver.query(By::Id("file")).first().await?;
    let greeting = driver.find(By::Id("greeting")).await?.text().await?;
    assert!(greeting.contains(UID), "greeting: {greeting}");
    file.send_keys(photo.to_str().unwrap()).await?;
    driver.screenshot(&out.join("2-upload.png")).await?;
    driver.find(By::Id("upload")).await?.click().await?;

    // The result page: ten classes, bald eagle first, and the photo shown.
    let table = driver.query(By::Id("classes")).wait(Duration::from_secs(60), POLL).first().await?;
    let rows = table.find_all(By::Css("tbody tr")).await?;
    assert_eq!(rows.len(), 10, "rows in the result table");
    let first = rows[0].find_all(By::Css("td")).await?;
    assert_eq!(first[0].text().await?.trim(), "1");
    assert_eq!(first.last().unwrap().text().await?.trim(), "bald eagle");
    assert!(first[1].text().await?.trim().ends_with('%'));
    let url = driver.current_url().await?;
    assert!(url.path().starts_with("/ai/result/"), "result URL {url}");
    let width = photo_width(driver).await?;
    assert!(width > 0, "the photo did not load (naturalWidth {width})");
    driver.screenshot(&out.join("3-result.png")).await?;

    // Another photo: straight back to the upload page, as the same student.
    driver.find(By::Id("another")).await?.click().await?;
    driver.query(By::Id("file")).first().await?;
    let greeting = driver.find(By::Id("greeting")).await?.text().await?;
    assert!(greeting.contains(UID), "greeting for another photo: {greeting}");
    driver.screenshot(&out.join("4-another.png")).await?;

    // Another name: the login page, the name filled in to be changed.
    driver.find(By::Css("main p a")).await?.click().await?;
    let uid = driver.query(By::Id("uid")).first().await?;
    assert_eq!(uid.value().await?.as_deref(), Some(UID), "login name on the login page");
    driver.screenshot(&out.join("5-login-again.png")).await?;
    Ok(())
}

/// The browser's Back button from a result shows the upload page again, not
/// a warning about sending the login form once more. Over plain HTTP from the
/// built-in server: Chromium keeps no copy of pages from a site whose
/// certificate it does not trust, as with the Apache test's self-signed one.
#[tokio::test(flavor = "multi_thread")]
async fn back_from_a_result_is_the_upload_page() {
    let server = web_support::Start::http().start();
    let out = apache::output_dir("browser-back");
    let profile = tempfile::tempdir().unwrap();
    let chromedriver = ChromeDriver::start(&out.join("chromedriver.log"));
    let photo = std::fs::canonicalize(common::shared_file("images/cat.jpg")).unwrap();

    let session = WebDriver::new(chromedriver.url.clone(), chromium::capabilities(profile.path()));
    let base = server.base();
    let outcome = run_browser_test(session, |driver| async move {
        driver.goto(format!("{base}/")).await?;
        driver.query(By::Id("uid")).first().await?.send_keys(UID).await?;
        driver.find(By::Id("next")).await?.click().await?;
        driver.query(By::Id("file")).first().await?.send_keys(photo.to_str().unwrap()).await?;
        driver.find(By::Id("upload")).await?.click().await?;
        driver.query(By::Id("classes")).wait(Duration::from_secs(60), POLL).first().await?;

        driver.back().await?;
        let greeting = driver.query(By::Id("greeting")).first().await;
        driver.screenshot(&out.join("back.png")).await?;
        let greeting = greeting.map_err(|e| anyhow::anyhow!("not the upload page: {e}"))?;
        let text = greeting.text().await?;
        anyhow::ensure!(text.contains(UID), "greeting after Back: {text}");
        Ok(())
    })
    .await;
    if let Err(e) = outcome {
        panic!("Back from the result page: {e}");
    }
}

const POLL: Duration = Duration::from_millis(200);

/// The photo's natural width once the browser has finished loading it.
async fn photo_width(driver: &WebDriver) -> anyhow::Result<u64> {
    let script = "const img = document.getElementById('photo'); \
                  return img.complete ? img.naturalWidth : -1;";
    for _ in 0..100 {
        let width = driver.execute(script, Vec::new()).await?.json().as_i64().unwrap_or(-1);
        if width >= 0 {
            return Ok(width as u64);
        }
        tokio::time::sleep(POLL).await;
    }
    anyhow::bail!("the photo never finished loading")
}
