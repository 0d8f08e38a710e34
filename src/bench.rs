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
use tract_onnx::prelude::*;

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
    /// With --fixed-input: run this many copies of the input as one batch
    /// and report the time per image.
    #[arg(long, default_value_t = 1, requires = "fixed_input")]
    pub batch: usize,
    /// With --fixed-input: print where inference time goes, node by node.
    #[arg(long, requires = "fixed_input")]
    pub profile: bool,
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

    if args.profile {
        let size = classifier.preprocessor().input_size() as usize;
        return profile(&mut session, model::fixed_input(size), args.runs);
    }

    if args.batch > 1 {
        return time_batch(&classifier, &args);
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

/// Inference on `--batch` copies of the fixed input at once: what gathering
/// concurrent uploads into one run would cost per image.
fn time_batch(classifier: &Classifier, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let manifest = classifier.manifest();
    let plan = model::load_plan(manifest, classifier.labels().len(), args.batch)?;
    let mut state = TypedSimpleState::new(&plan)?;

    let one = model::fixed_input(classifier.preprocessor().input_size() as usize);
    let copies = vec![one; args.batch];
    let input = Tensor::stack_tensors(0, &copies)?;
    let runs = time_runs(args.runs, || {
        let input = input.clone().into_tvalue();
        let start = Instant::now();
        state.run(tvec!(input))?;
        Ok(Timings { inference: start.elapsed() / args.batch as u32, ..Timings::default() })
    })?;

    let image = format!("fixed input, batch of {}", args.batch);
    let r = report(&image, &manifest.name, args.threads, &runs);
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{:<28} {:>7} {:>24.1} ms per image", r.image, r.threads, r.inference_ms);
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

/// Each node's operator, output shape and total time, by node name.
type NodeTimes = std::collections::HashMap<String, (String, String, Duration)>;

/// Runs the plan once, adding each node's time to `times` if given.
fn run_timing_nodes(
    state: &mut TypedSimpleState,
    input: TVec<TValue>,
    mut times: Option<&mut NodeTimes>,
) -> TractResult<()> {
    state.run_plan_with_eval(input, |ctx, op_state, node, inputs| {
        let start = Instant::now();
        let outputs = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
        if let Some(times) = times.as_deref_mut() {
            let entry = times.entry(node.name.clone()).or_insert_with(|| {
                let shape = format!("{:?}", node.outputs[0].fact.shape);
                (node.op().name().to_string(), shape, Duration::ZERO)
            });
            entry.2 += start.elapsed();
        }
        outputs
    })?;
    Ok(())
}

/// Times every node of the plan over `runs` runs and prints the costliest
/// nodes and operator kinds, like tract's own `--profile`.
fn profile(session: &mut model::Session, input: Tensor, runs: usize) -> anyhow::Result<ExitCode> {
    use std::collections::HashMap;

    let mut by_node = NodeTimes::new();
    for run in 0..runs + 2 {
        // The first two runs allocate; leave them out.
        let times = (run >= 2).then_some(&mut by_node);
        let input = tvec!(input.clone().into_tvalue());
        session.on_threads(|state| run_timing_nodes(state, input, times))?;
    }
    let per_run = |d: Duration| ms(d) / runs.max(1) as f64;
    let total: f64 = by_node.values().map(|(_, _, d)| per_run(*d)).sum();
    println!("profile over {runs} runs: {total:.2} ms a run in {} nodes", by_node.len());

    let mut by_op: HashMap<&str, f64> = HashMap::new();
    for (op, _, d) in by_node.values() {
        *by_op.entry(op.as_str()).or_default() += per_run(*d);
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, t) in ops.iter().take(12) {
        println!("  {t:8.2} ms {:5.1}%  {op}", t / total * 100.0);
    }
    let mut nodes: Vec<_> = by_node.iter().collect();
    nodes.sort_by(|a, b| b.1 .2.cmp(&a.1 .2));
    println!("costliest nodes:");
    for (name, (op, shape, d)) in nodes.iter().take(20) {
        println!("  {:8.2} ms  {op:<24} {name:<40} {shape}", per_run(*d));
    }
    Ok(ExitCode::SUCCESS)
}
