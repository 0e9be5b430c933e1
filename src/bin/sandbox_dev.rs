//! Runs the sandbox on its own until Ctrl-C (`cargo run --bin sandbox_dev -- --listen 127.0.0.1:0`),
//! for the SDK check and demos until the main binary's `sandbox` subcommand is wired.

use clap::Parser;
use openai_governor::sandbox::{SandboxArgs, run_cli};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SandboxArgs,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    run_cli(cli.args, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
