//! The `strata` command line. Each subcommand is a thin layer over the library: parsing and
//! its arguments are in `cli/args.rs`, one function per command in `cli/commands.rs`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log.as_deref());
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(tracing_subscriber::EnvFilter::new)
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
