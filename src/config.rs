//! The server's configuration: a TOML file (every key optional, relative
//! paths taken from the file's folder) overridden by command-line options
//! (relative to the working folder), checked once at start-up into a
//! [`Config`] that says everything the server needs. `check-config` runs the
//! same checks, and a few more that need to open files, and lists every
//! problem at once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::manifest::Manifest;
use crate::web::i18n::Language;
use crate::web::listen::Address;

/// Defaults, in one place.
pub mod defaults {
    pub const MOUNT: &str = "/ai";
    pub const MODEL: &str = "googlenet";
    pub const MODELS_DIR: &str = "models";
    pub const UPLOADS: &str = "uploads";
    pub const TEMPLATES: &str = "templates";
    /// Waiting classifications before 503: above a class of 104 all
    /// pressing Upload at once, with room to spare.
    pub const QUEUE: usize = 256;
    /// 20 MiB: a full-size photo from any phone camera.
    pub const MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;
    /// 80 megapixels, as `decode::DecodeLimits::default`.
    pub const MAX_IMAGE_PIXELS: u64 = 80_000_000;
    pub const TOP: usize = 10;
    /// Owner and group (the web server's) may connect; others may not.
    pub const SOCKET_MODE: u32 = 0o660;
}

/// Which protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    FastCgi,
    Http,
}

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub fastcgi: Option<String>,
    pub http: Option<String>,
    pub mount: Option<String>,
    pub model: Option<String>,
    pub models_dir: Option<PathBuf>,
    pub uploads: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub log_config: Option<PathBuf>,
    pub language: Option<String>,
    pub workers: Option<usize>,
    pub threads: Option<usize>,
    pub queue: Option<usize>,
    pub max_upload_bytes: Option<u64>,
    pub max_image_pixels: Option<u64>,
    pub top: Option<usize>,
    pub socket_mode: Option<SocketMode>,
}

/// A socket mode, best written as an octal string (`"0660"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SocketMode {
    Text(String),
    Number(u32),
}

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Protocol and address; `None` only while checking a file meant to be
    /// completed on the command line.
    pub listen: Option<(Protocol, Address)>,
    /// The mount point without a trailing slash (`/ai`; empty for the root).
    pub mount: String,
    /// The model manifest.
    pub model: PathBuf,
    pub uploads: PathBuf,
    pub templates: PathBuf,
    pub log_config: Option<PathBuf>,
    pub language: Language,
    /// Classification threads (at least 1).
    pub workers: usize,
    /// Threads one classification may use (at least 1).
    pub threads: usize,
    pub queue: usize,
    pub max_upload_bytes: u64,
    pub max_image_pixels: u64,
    pub top: usize,
    pub socket_mode: u32,
}

impl Config {
    /// The configuration `serve` runs with: the file named by `--config`, if
    /// any, overridden by the other options.
    pub fn for_serve(args: &ServeArgs) -> anyhow::Result<Config> {
        let (file, base) = match &args.config {
            Some(path) => (read_file(path)?, folder_of(path)),
            None => (FileConfig::default(), PathBuf::from(".")),
        };
        let config = Config::build(file, &base, args, true).map_err(|problems| {
            let origin = match &args.config {
                Some(path) => format!("the configuration ({})", path.display()),
                None => "the command line".to_string(),
            };
            anyhow::anyhow!("{origin} has problems:\n  - {}", problems.join("\n  - "))
        })?;
        Ok(config)
    }

    /// Merges the file (paths relative to `base`) with the command line
    /// (paths relative to the working folder) and checks the result.
    pub fn build(
        file: FileConfig,
        base: &Path,
        args: &ServeArgs,
        require_listen: bool,
    ) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let from_file = |path: &Path| base.join(path);

        let listen = listen_address(&file, args, require_listen, &mut problems);

        let mount = args.mount.clone().or(file.mount).unwrap_or_else(|| defaults::MOUNT.into());
        let mount = check_mount(&mount).unwrap_or_else(|problem| {
            problems.push(problem);
            String::new()
        });

        let models_dir = file
            .models_dir
            .as_deref()
            .map_or_else(|| from_file(Path::new(defaults::MODELS_DIR)), from_file);
        let model = match (&args.model, &file.model) {
            (Some(model), _) => resolve_model(model, Path::new("."), &models_dir),
            (None, Some(model)) => resolve_model(model, base, &models_dir),
            (None, None) => resolve_model(defaults::MODEL, base, &models_dir),
        }
        .unwrap_or_else(|e| {
            problems.push(format!("{e:#}"));
            PathBuf::new()
        });

        let path_option = |cli: &Option<PathBuf>, file: &Option<PathBuf>, default: &str| {
            cli.clone().unwrap_or_else(|| from_file(file.as_deref().unwrap_or(Path::new(default))))
        };
        let uploads = path_option(&args.uploads, &file.uploads, defaults::UPLOADS);
        let templates = path_option(&args.templates, &file.templates, defaults::TEMPLATES);
        let log_config = args.log_config.clone().or_else(|| file.log_config.map(|p| base.join(p)));

        let language = match file.language.as_deref() {
            None => Language::Ja,
            Some(code) => Language::from_code(code).unwrap_or_else(|| {
                problems.push(format!("`language` is {code:?}: write \"ja\" or \"en\""));
                Language::Ja
            }),
        };

        let workers = match args.workers.or(file.workers).unwrap_or(0) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n > 256 => {
                problems.push(format!("`workers` is {n}: use at most one or two per core"));
                1
            }
            n => n,
        };
        let threads = args.threads.or(file.threads).unwrap_or(1);
        if !(1..=64).contains(&threads) {
            problems.push(format!("`threads` is {threads}: choose between 1 and the cores"));
        }
        let queue = file.queue.unwrap_or(defaults::QUEUE);
        if queue == 0 {
            problems.push("`queue` is 0: at least 1 upload must be able to wait".into());
        }
        let max_upload_bytes = file.max_upload_bytes.unwrap_or(defaults::MAX_UPLOAD_BYTES);
        if !(1024..=1 << 30).contains(&max_upload_bytes) {
            problems.push(format!(
                "`max_upload_bytes` is {max_upload_bytes}: choose between 1024 and 1073741824 \
                 (1 GiB)"
            ));
        }
        let max_image_pixels = file.max_image_pixels.unwrap_or(defaults::MAX_IMAGE_PIXELS);
        if max_image_pixels < 224 * 224 {
            problems.push(format!(
                "`max_image_pixels` is {max_image_pixels}: it must take at least one 224x224 \
                 picture (50176)"
            ));
        }
        let top = file.top.unwrap_or(defaults::TOP);
        if !(1..=100).contains(&top) {
            problems.push(format!("`top` is {top}: show between 1 and 100 classes"));
        }
        let socket_mode = match &file.socket_mode {
            None => defaults::SOCKET_MODE,
            Some(mode) => parse_mode(mode).unwrap_or_else(|problem| {
                problems.push(problem);
                defaults::SOCKET_MODE
            }),
        };

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            mount,
            model,
            uploads,
            templates,
            log_config,
            language,
            workers,
            threads,
            queue,
            max_upload_bytes,
            max_image_pixels,
            top,
            socket_mode,
        })
    }

    /// The checks that open files: the model manifest and the files it
    /// names, the templates and catalogue, the uploads folder, the logging
    /// configuration. Returns every problem found.
    pub fn check_files(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match Manifest::load(&self.model) {
            Ok(manifest) => {
                if !manifest.onnx.is_file() {
                    let hint = manifest.fetch_hint.as_deref().unwrap_or("check `onnx`");
                    problems.push(format!(
                        "model file {} does not exist: {hint}",
                        manifest.onnx.display()
                    ));
                }
                if let Err(e) = crate::labels::Labels::load(&manifest.labels) {
                    problems.push(format!("{e:#}"));
                }
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
        if let Err(e) = crate::web::render::Renderer::load(&self.templates) {
            problems.push(format!("{e:#} (set `templates` to the folder of the page templates)"));
        }
        if self.uploads.exists() {
            if !self.uploads.is_dir() {
                problems.push(format!("uploads {} is not a folder", self.uploads.display()));
            }
        } else {
            let parent = self.uploads.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|p| !p.is_dir()) {
                problems.push(format!(
                    "uploads folder {} does not exist, nor its parent: create it",
                    self.uploads.display()
                ));
            }
        }
        if let Some(path) = &self.log_config {
            let loaded =
                log4rs::config::load_config_file(path, log4rs::config::Deserializers::default());
            if let Err(e) = loaded {
                problems.push(format!("logging configuration {}: {e:#}", path.display()));
            }
        }
        problems
    }
}

/// `check-config FILE`: says what is wrong with a configuration file, or
/// that it is fine (exit 0).
pub fn check_file(path: &Path) -> anyhow::Result<ExitCode> {
    let file = read_file(path)?;
    let args = ServeArgs::default();
    let mut problems = Vec::new();
    let config = match Config::build(file, &folder_of(path), &args, false) {
        Ok(config) => {
            problems.extend(config.check_files());
            Some(config)
        }
        Err(found) => {
            problems.extend(found);
            None
        }
    };

    match config {
        Some(config) if problems.is_empty() => {
            let listen = match &config.listen {
                Some((Protocol::FastCgi, address)) => format!("serves FastCGI on {address}"),
                Some((Protocol::Http, address)) => format!("serves HTTP on {address}"),
                None => "needs --fastcgi or --http on the command line".to_string(),
            };
            println!(
                "{} is fine: {listen}, mounted at {}/, model {}, uploads in {}, {} workers",
                path.display(),
                config.mount,
                config.model.display(),
                config.uploads.display(),
                config.workers
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            println!("{} has {} problem(s):", path.display(), problems.len());
            for problem in &problems {
                println!("  - {problem}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("configuration {} is not valid", path.display()))
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn listen_address(
    file: &FileConfig,
    args: &ServeArgs,
    required: bool,
    problems: &mut Vec<String>,
) -> Option<(Protocol, Address)> {
    let chosen = match (&args.fastcgi, &args.http, &file.fastcgi, &file.http) {
        (Some(a), _, _, _) => Some((Protocol::FastCgi, a)),
        (None, Some(a), _, _) => Some((Protocol::Http, a)),
        (None, None, Some(_), Some(_)) => {
            problems.push("both `fastcgi` and `http` are set: keep one".into());
            None
        }
        (None, None, Some(a), None) => Some((Protocol::FastCgi, a)),
        (None, None, None, Some(a)) => Some((Protocol::Http, a)),
        (None, None, None, None) => {
            if required {
                problems.push(
                    "no address to listen on: set `fastcgi` or `http` in the configuration, or \
                     give --fastcgi ADDR or --http ADDR"
                        .into(),
                );
            }
            None
        }
    };
    let (protocol, text) = chosen?;
    match text.parse::<Address>() {
        Ok(address) => Some((protocol, address)),
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    }
}

/// Normalises a mount point: a leading slash, no trailing one.
fn check_mount(mount: &str) -> Result<String, String> {
    let trimmed = mount.trim_end_matches('/');
    let plain = trimmed.chars().all(|c| c.is_ascii_graphic() && !"?#%\\\"<>".contains(c));
    if !mount.starts_with('/') || !plain || trimmed.contains("//") {
        return Err(format!(
            "`mount` is {mount:?}: write a path such as \"/ai\" (a leading slash, letters, digits \
             and - _ . / only)"
        ));
    }
    Ok(trimmed.to_string())
}

fn resolve_model(model: &str, base: &Path, models_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = Manifest::resolve(model, models_dir)?;
    Ok(if path.is_relative() && !path.starts_with(models_dir) { base.join(path) } else { path })
}

fn parse_mode(mode: &SocketMode) -> Result<u32, String> {
    let value = match mode {
        SocketMode::Text(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8).ok(),
        SocketMode::Number(number) => Some(*number),
    };
    match value {
        Some(value) if value <= 0o777 => Ok(value),
        _ => Err(format!(
            "`socket_mode` {mode:?} is not a file mode: write it as an octal string, like \"0660\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_text: &str, args: ServeArgs) -> Result<Config, Vec<String>> {
        let file: FileConfig = toml::from_str(toml_text).unwrap();
        Config::build(file, Path::new("/etc/ic"), &args, true)
    }

    #[test]
    fn file_paths_are_relative_to_the_file_and_options_override() {
        let config = build(
            "fastcgi = \"/run/ic.sock\"\nmodel = \"m/x.toml\"\nuploads = \"up\"\nmount = \"/ai/\"",
            ServeArgs::default(),
        )
        .unwrap();
        assert_eq!(config.listen, Some((Protocol::FastCgi, Address::Unix("/run/ic.sock".into()))));
        assert_eq!(config.model, Path::new("/etc/ic/m/x.toml"));
        assert_eq!(config.uploads, Path::new("/etc/ic/up"));
        assert_eq!(config.templates, Path::new("/etc/ic/templates"));
        assert_eq!(config.mount, "/ai");
        assert_eq!((config.queue, config.top, config.socket_mode), (256, 10, 0o660));
        assert!(config.workers >= 1);

        let args = ServeArgs {
            http: Some("127.0.0.1:0".into()),
            uploads: Some("here".into()),
            mount: Some("/x".into()),
            workers: Some(3),
            ..ServeArgs::default()
        };
        let config = build("fastcgi = \"/run/ic.sock\"\nmodel = \"m/x.toml\"", args).unwrap();
        assert_eq!(config.listen, Some((Protocol::Http, Address::Tcp("127.0.0.1:0".into()))));
        assert_eq!(config.uploads, Path::new("here"));
        assert_eq!((config.mount.as_str(), config.workers), ("/x", 3));
    }

    #[test]
    fn bad_values_are_all_reported() {
        let problems = build(
            "fastcgi = \"a\"\nhttp = \"b\"\nmount = \"ai\"\nlanguage = \"fr\"\nqueue = 0\n\
             top = 0\nsocket_mode = \"0999\"\nmax_upload_bytes = 5\nmodel = \"m/x.toml\"",
            ServeArgs::default(),
        )
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "both `fastcgi` and `http`",
            "`mount`",
            "`language`",
            "`queue`",
            "`top`",
            "socket_mode",
            "max_upload_bytes",
        ] {
            assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");
    }

    #[test]
    fn a_listen_address_is_required_to_serve() {
        let problems = build("model = \"m/x.toml\"", ServeArgs::default()).unwrap_err();
        assert!(problems[0].contains("--fastcgi ADDR"), "{problems:?}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<FileConfig>("listen = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `listen`"), "{err}");
    }

    #[test]
    fn the_shipped_example_knows_every_key_it_documents() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("apache/imagenet-classroom.toml");
        let text = std::fs::read_to_string(path).unwrap();
        toml::from_str::<FileConfig>(&text).unwrap();

        // Each commented-out `#key = value` line, switched on.
        let switched_on: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let file: FileConfig = toml::from_str(&switched_on).unwrap();
        assert!(file.fastcgi.is_some() && file.http.is_some() && file.queue == Some(256));
        assert!(file.socket_mode.is_some() && file.threads == Some(1));
    }

    #[test]
    fn socket_modes_are_octal() {
        assert_eq!(parse_mode(&SocketMode::Text("0660".into())), Ok(0o660));
        assert_eq!(parse_mode(&SocketMode::Text("600".into())), Ok(0o600));
        assert_eq!(parse_mode(&SocketMode::Number(0o666)), Ok(0o666));
        assert!(parse_mode(&SocketMode::Number(660)).is_err());
        assert!(parse_mode(&SocketMode::Text("rw".into())).is_err());
    }
}
