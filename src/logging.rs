//! Logging: log4rs from the configuration file the administrator names, or
//! else one line per event on stderr at info level, which systemd's journal
//! and Apache's error log (for a worker mod_fcgid starts) both collect.

use std::path::Path;

use anyhow::Context;
use log::LevelFilter;
use log4rs::append::console::{ConsoleAppender, Target};
use log4rs::config::{Appender, Config, Logger, Root};
use log4rs::encode::pattern::PatternEncoder;

/// The default line: time, level, where, message.
const PATTERN: &str = "{d(%Y-%m-%dT%H:%M:%S%.3f%:z)} {l:<5} {t} - {m}{n}";

/// Starts logging, from `config` when given.
pub fn init(config: Option<&Path>) -> anyhow::Result<()> {
    match config {
        Some(path) => log4rs::init_file(path, Default::default())
            .with_context(|| format!("cannot set up logging from {}", path.display())),
        None => {
            let stderr = ConsoleAppender::builder()
                .target(Target::Stderr)
                .encoder(Box::new(PatternEncoder::new(PATTERN)))
                .build();
            let config = Config::builder()
                .appender(Appender::builder().build("stderr", Box::new(stderr)))
                // The FastCGI library logs every record at trace and each
                // oddity of a web server at warn: keep the warnings only.
                .logger(Logger::builder().build("tokio_fastcgi", LevelFilter::Warn))
                .build(Root::builder().appender("stderr").build(LevelFilter::Info))
                .context("cannot build the default logging configuration")?;
            log4rs::init_config(config).context("cannot start logging")?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_configuration_loads() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("apache/log4rs.yaml");
        let text = std::fs::read_to_string(shipped).unwrap();
        assert!(text.contains("/var/log/imagenet-classroom/"));
        let text =
            text.replace("/var/log/imagenet-classroom/", &format!("{}/", dir.path().display()));
        let path = dir.path().join("log4rs.yaml");
        std::fs::write(&path, text).unwrap();

        let config = log4rs::config::load_config_file(&path, Default::default()).unwrap();
        // An appender log4rs cannot build is dropped, not reported: count them.
        assert_eq!(config.appenders().len(), 2);
        assert_eq!(config.root().level(), LevelFilter::Info);
    }
}
