//! `imagenet-classroom bench`: where the time of one classification goes.
//! Times decoding, preprocessing and inference separately over many runs and
//! prints medians; with `--fixed-input` it times inference alone on the
//! deterministic input that the reference results in `shared/` were made with.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::decode::DecodeLimits;
use crate::manifest::Manifest;
use crate::model::{self, Classifier, Timings};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model name (a manifest in the models folder) or path to a manifest.
    #[arg(long, short, default_value = "googlenet")]
    pub model: String,
    /// Folder where model names are looked up.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Threads one inference may use.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed runs for each image (after two untimed ones).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Time inference alone on the fixed numeric input instead of images.
    #[arg(long)]
    pub fixed_input: bool,
    /// Print one JSON object per image with every run's times.
    #[arg(long)]
    pub json: bool,
    /// Images to time.
    #[arg(required_unless_present = "fixed_input")]
    pub images: Vec<PathBuf>,
}

/// The medians for one image, and every run's inference time.
#[derive(Debug, Serialize)]
struct Report {
    image: String,
    model: String,
    threads: usize,
    runs: usize,
    decode_ms: f64,
    preprocess_ms: f64,
    inference_ms: f64,
    total_ms: f64,
    inference_runs_ms: Vec<f64>,
    /// With `--fixed-input`: the class probabilities of the last run, so a
    /// script can check them against another engine's.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Vec<f32>>,
}

/// Runs the benchmark and prints its figures.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    model::set_threads(args.threads);
    let manifest = Manifest::load(&Manifest::resolve(&args.model, &args.models_dir)?)?;
    let load_start = Instant::now();
    let classifier = Classifier::load(manifest, DecodeLimits::default())?;
    let load_time = load_start.elapsed();
    let mut session = classifier.session()?;
    let name = classifier.manifest().name.clone();
    if !args.json {
        println!("model {name}: loaded and optimised in {:.0} ms", ms(load_time));
        println!(
            "{:<28} {:>7} {:>9} {:>11} {:>10} {:>9}",
            "image", "threads", "decode", "preprocess", "inference", "total"
        );
    }

    let mut reports = Vec::new();
    if args.fixed_input {
        // The input is built once, outside the timed region, as another
        // engine's benchmark would hand it a ready tensor.
        let input = model::fixed_input(classifier.preprocessor().input_size() as usize);
        let mut output = Vec::new();
        let runs = time_runs(args.runs, || {
            let input = input.clone();
            let start = Instant::now();
            output = classifier.probabilities(&mut session, input)?;
            Ok(Timings { inference: start.elapsed(), ..Timings::default() })
        })?;
        let mut fixed = report("fixed input", &name, args.threads, &runs);
        fixed.output = Some(output);
        reports.push(fixed);
    }
    for path in &args.images {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let runs =
            time_runs(args.runs, || Ok(classifier.classify(&mut session, &bytes, 10)?.timings))
                .with_context(|| format!("cannot classify {}", path.display()))?;
        let shown = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        reports.push(report(&shown, &name, args.threads, &runs));
    }

    for r in &reports {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!(
                "{:<28} {:>7} {:>6.1} ms {:>8.1} ms {:>7.1} ms {:>6.1} ms",
                r.image, r.threads, r.decode_ms, r.preprocess_ms, r.inference_ms, r.total_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn time_runs(
    runs: usize,
    mut once: impl FnMut() -> anyhow::Result<Timings>,
) -> anyhow::Result<Vec<Timings>> {
    // Two untimed runs first: the first run of a plan allocates its buffers.
    for _ in 0..2 {
        once()?;
    }
    (0..runs.max(1)).map(|_| once()).collect()
}

fn report(image: &str, model: &str, threads: usize, runs: &[Timings]) -> Report {
    let median_of = |pick: fn(&Timings) -> Duration| {
        let mut values: Vec<f64> = runs.iter().map(|t| ms(pick(t))).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Report {
        image: image.to_string(),
        model: model.to_string(),
        threads,
        runs: runs.len(),
        decode_ms: median_of(|t| t.decode),
        preprocess_ms: median_of(|t| t.preprocess),
        inference_ms: median_of(|t| t.inference),
        total_ms: median_of(|t| t.total()),
        inference_runs_ms: runs.iter().map(|t| ms(t.inference)).collect(),
        output: None,
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
