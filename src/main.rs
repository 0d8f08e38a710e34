use std::process::ExitCode;

use clap::Parser;
use imagenet_classroom::cli::{Cli, Command};

fn main() -> ExitCode {
    imagenet_classroom::malloc::keep_memory_for_reuse();

    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Classify(args) => imagenet_classroom::classify_cmd::run(args),
        Command::Serve(args) => imagenet_classroom::server::run(args),
        Command::CheckConfig { file } => imagenet_classroom::config::check_file(&file),
        Command::Bench(args) => imagenet_classroom::bench::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("imagenet-classroom: {err:#}");
            ExitCode::from(2)
        }
    }
}
