//! Headless Chromium for the browser tests: Debian's `chromium` driven
//! through its `chromedriver`, started on a free port for one test and
//! stopped on drop.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thirtyfour::prelude::*;
use thirtyfour::ChromeCapabilities;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver.
pub struct ChromeDriver {
    child: Child,
    /// Where WebDriver clients connect.
    pub url: String,
}

impl ChromeDriver {
    /// Starts chromedriver, logging into `log`, and waits until it listens.
    pub fn start(log: &Path) -> ChromeDriver {
        let missing: Vec<&str> = [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]
            .into_iter()
            .filter(|(path, _)| !Path::new(path).exists())
            .map(|(_, package)| package)
            .collect();
        assert!(
            missing.is_empty(),
            "the browser tests need Debian's {}: install with .ci/install-system-deps (as root \
             or with sudo), or: apt-get install -y {}",
            missing.join(" and "),
            missing.join(" ")
        );

        let port = super::apache::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let driver = ChromeDriver { child, url: format!("http://127.0.0.1:{port}") };

        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium headless, quiet on this network-less machine (no background
/// connections, updates, sync or QUIC), with a fresh profile in `profile`,
/// trusting our self-signed certificate, and asking for pages in Japanese
/// as the students' browsers do.
pub fn capabilities(profile: &Path) -> ChromeCapabilities {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1200,900",
        "--lang=ja",
        &format!("--user-data-dir={}", profile.display()),
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_experimental_option("prefs", serde_json::json!({"intl.accept_languages": "ja"}))
        .unwrap();
    caps.accept_insecure_certs(true).unwrap();
    caps
}
