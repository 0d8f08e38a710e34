//! `imagenet-classroom classify`: print the likeliest classes of each image,
//! as a table or as one JSON object per line. A file that cannot be read or
//! classified gets one line on stderr; the others are still classified.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::ClassifyArgs;
use crate::decode::DecodeLimits;
use crate::manifest::Manifest;
use crate::model::{Classification, Classifier, Prediction};

/// One image's line of `--json` output.
#[derive(Debug, Serialize)]
pub struct JsonResult<'a> {
    pub image: &'a str,
    pub model: &'a str,
    pub millis: f64,
    pub decode_millis: f64,
    pub preprocess_millis: f64,
    pub inference_millis: f64,
    pub top: &'a [Prediction],
}

impl<'a> JsonResult<'a> {
    /// The JSON form of one classification, shared with the web API.
    pub fn new(image: &'a str, model: &'a str, result: &'a Classification) -> JsonResult<'a> {
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        JsonResult {
            image,
            model,
            millis: ms(result.timings.total()),
            decode_millis: ms(result.timings.decode),
            preprocess_millis: ms(result.timings.preprocess),
            inference_millis: ms(result.timings.inference),
            top: &result.top,
        }
    }
}

/// Runs the subcommand; the exit code is 1 when any image failed.
pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let manifest_path = Manifest::resolve(&args.model, &args.models_dir)?;
    let manifest = Manifest::load(&manifest_path)?;
    let classifier = Classifier::load(manifest, DecodeLimits::default())?;
    let mut session = classifier.session()?;
    let model = classifier.manifest().name.clone();

    let mut failures = 0;
    for path in &args.images {
        let shown = path.display().to_string();
        let outcome =
            std::fs::read(path).with_context(|| format!("cannot read {shown}")).and_then(|bytes| {
                classifier
                    .classify(&mut session, &bytes, args.top)
                    .with_context(|| format!("cannot classify {shown}"))
            });
        match outcome {
            Ok(result) if args.json => {
                println!("{}", serde_json::to_string(&JsonResult::new(&shown, &model, &result))?);
            }
            Ok(result) => print_table(&shown, &model, &result),
            Err(err) => {
                eprintln!("imagenet-classroom: {err:#}");
                failures += 1;
            }
        }
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_table(image: &str, model: &str, result: &Classification) {
    let ms = result.timings.total().as_secs_f64() * 1e3;
    println!("{image} ({model}, {ms:.1} ms)");
    for p in &result.top {
        println!("{:>4} {:>7.2}%  {}", p.rank, p.probability * 100.0, p.names);
    }
}
