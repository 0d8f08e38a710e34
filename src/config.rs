//! Server configuration (placeholder until the web application lands).
use std::path::Path;
use std::process::ExitCode;

/// Validates a configuration file.
pub fn check_file(_path: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check-config is not available yet")
}
