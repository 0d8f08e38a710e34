//! `imagenet-classroom serve`: loads the configuration, logging, templates
//! and model, starts the classification pool, listens, and serves until
//! SIGTERM or SIGINT, then finishes the requests in flight and removes its
//! socket. What a request does is the web application's business.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ServeArgs;
use crate::config::{Config, Protocol};
use crate::decode::DecodeLimits;
use crate::manifest::Manifest;
use crate::model::Classifier;
use crate::pool::Pool;
use crate::web::listen::{Connection, Listener};
use crate::web::render::Renderer;
use crate::web::storage::Storage;
use crate::web::{fastcgi_adapter, http_adapter, App, Settings};

/// How long requests in flight may take to finish once we are asked to stop.
const GRACE: Duration = Duration::from_secs(30);

/// Runs the server until it is asked to stop.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::for_serve(&args)?;
    crate::logging::init(config.log_config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let (protocol, address) =
        config.listen.clone().context("no address to listen on: give --fastcgi or --http")?;

    // Set before any model runs: tract reads it when a plan first executes.
    crate::model::set_threads(config.threads);

    // Everything that can fail on a typo comes before the slow model load.
    let renderer = Renderer::load(&config.templates)?;
    let storage = Storage::open(&config.uploads)?;
    let manifest = Manifest::load(&config.model)?;
    let limits = DecodeLimits { max_pixels: config.max_image_pixels };
    let classifier = Arc::new(Classifier::load(manifest, limits)?);
    let pool = Pool::start(classifier.clone(), config.workers, config.queue)?;
    let settings = Settings {
        language: config.language,
        max_upload_bytes: config.max_upload_bytes,
        top: config.top,
    };
    let app = Arc::new(App::new(settings, &classifier, pool, storage, renderer));

    let listener = Listener::bind(&address, config.socket_mode).await?;
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone())?;

    let ready = match protocol {
        Protocol::Http => match &listener {
            Listener::Tcp(_) => format!("http://{}{}/", listener.local(), config.mount),
            Listener::Unix { .. } => format!("http+unix://{}{}/", listener.local(), config.mount),
        },
        Protocol::FastCgi => format!("fastcgi {}", listener.local()),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {ready}").and_then(|()| stdout.flush()).ok();
    drop(stdout);
    log::info!(
        "serving model={} workers={} threads={} queue={} mount={}/ on {ready}",
        app.model_name(),
        config.workers,
        config.threads,
        config.queue,
        config.mount
    );

    let tracker = TaskTracker::new();
    let mount: Arc<str> = Arc::from(config.mount.as_str());
    loop {
        let connection = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let connection = match connection {
            Ok(connection) => connection,
            Err(e) => {
                // Out of file descriptors, usually: wait for some to close.
                log::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (app, mount, shutdown) = (app.clone(), mount.clone(), shutdown.clone());
        match (protocol, connection) {
            (Protocol::FastCgi, Connection::Tcp(stream, _)) => {
                tracker.spawn(fastcgi_adapter::serve_connection(app, stream, mount, shutdown));
            }
            (Protocol::FastCgi, Connection::Unix(stream)) => {
                tracker.spawn(fastcgi_adapter::serve_connection(app, stream, mount, shutdown));
            }
            (Protocol::Http, Connection::Tcp(stream, peer)) => {
                let remote = peer.ip().to_string();
                let serving = http_adapter::serve_connection(app, stream, remote, mount, shutdown);
                tracker.spawn(serving);
            }
            (Protocol::Http, Connection::Unix(stream)) => {
                let serving =
                    http_adapter::serve_connection(app, stream, "unix".into(), mount, shutdown);
                tracker.spawn(serving);
            }
        }
    }

    // Stop accepting first, then let what is in flight finish.
    drop(listener);
    tracker.close();
    log::info!("stopping: finishing {} connection(s)", tracker.len());
    if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
        log::warn!("stopping with {} connection(s) unfinished after {GRACE:?}", tracker.len());
    }
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
fn watch_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        log::info!("{name} received: no new connections");
        shutdown.cancel();
    });
    Ok(())
}
