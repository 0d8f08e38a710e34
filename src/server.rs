//! Serving (placeholder until the web application lands).
use std::process::ExitCode;

/// Runs the server.
pub fn run(_args: crate::cli::ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("serve is not available yet")
}
