//! The command line: what each subcommand takes. Every option of `serve` can
//! also come from an environment variable, which is how Apache's mod_fcgid
//! and systemd pass settings to a worker they start.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Classify photos with a pretrained ImageNet network, from the command line
/// or as a web application behind Apache.
#[derive(Debug, Parser)]
#[command(name = "imagenet-classroom", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the likeliest ImageNet classes of each image.
    Classify(ClassifyArgs),
    /// Serve the students' web pages over FastCGI or HTTP.
    Serve(ServeArgs),
    /// Check a configuration file and say what is wrong with it.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Time decoding, preprocessing and inference.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Model name (a manifest in the models folder) or path to a manifest.
    #[arg(long, short, default_value = "googlenet", env = "IMAGENET_CLASSROOM_MODEL")]
    pub model: String,
    /// Folder where model names are looked up.
    #[arg(long, default_value = "models", env = "IMAGENET_CLASSROOM_MODELS")]
    pub models_dir: PathBuf,
    /// How many classes to print for each image.
    #[arg(long, short, default_value_t = 10)]
    pub top: usize,
    /// Print one JSON object per image and line.
    #[arg(long)]
    pub json: bool,
    /// The images to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); options given here override it.
    #[arg(long, short, env = "IMAGENET_CLASSROOM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve FastCGI on ADDR: host:port, a unix socket path, or fd:N for an
    /// inherited listening socket (fd:0 under mod_fcgid, fd:3 under systemd).
    #[arg(long, env = "IMAGENET_CLASSROOM_FASTCGI", conflicts_with = "http")]
    pub fastcgi: Option<String>,
    /// Serve plain HTTP on ADDR (host:port or a unix socket path), for trying it out.
    #[arg(long, env = "IMAGENET_CLASSROOM_HTTP")]
    pub http: Option<String>,
    /// Model manifest, or the name of one in the models folder.
    #[arg(long, env = "IMAGENET_CLASSROOM_MODEL")]
    pub model: Option<String>,
    /// Folder where uploaded photos and the results log are kept.
    #[arg(long, env = "IMAGENET_CLASSROOM_UPLOADS")]
    pub uploads: Option<PathBuf>,
    /// Path the application is mounted under (`/ai`).
    #[arg(long, env = "IMAGENET_CLASSROOM_MOUNT")]
    pub mount: Option<String>,
    /// Folder of the page templates and the message catalogue.
    #[arg(long, env = "IMAGENET_CLASSROOM_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// log4rs configuration file (YAML or TOML).
    #[arg(long, env = "IMAGENET_CLASSROOM_LOG_CONFIG")]
    pub log_config: Option<PathBuf>,
    /// Classification threads (0: one per core).
    #[arg(long, env = "IMAGENET_CLASSROOM_WORKERS")]
    pub workers: Option<usize>,
    /// Threads one classification may use (default 1: each worker alone).
    #[arg(long, env = "IMAGENET_CLASSROOM_THREADS")]
    pub threads: Option<usize>,
}
