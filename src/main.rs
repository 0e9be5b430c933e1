//! The `openai-governor` binary: parse the command line, load the configuration, start
//! logging, run the subcommand. Everything else lives in the library.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use openai_governor::auth::{Scope, mint_hs256};
use openai_governor::config::{Config, LogSettings, Settings};
use openai_governor::{app, http, service, store, telemetry};

#[derive(Parser)]
#[command(
    name = "openai-governor",
    version,
    about = "Access governance for OpenAI Platform organizations"
)]
struct Cli {
    #[command(flatten)]
    log: LogSettings,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Each subcommand takes only its own flags: the service's settings (database, keys, JWT, …)
/// are flattened into the subcommands that use them, so `sandbox --help` does not list them.
#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(SettingsArgs),
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
    /// Run the fake OpenAI admin API for tests and demos.
    #[cfg(feature = "sandbox")]
    Sandbox(openai_governor_sandbox::SandboxArgs),
    /// Mint a JWT signed with the configured HS256 secret, for local use.
    Token(TokenArgs),
    /// Re-encrypt every stored admin key under the newest encryption key.
    Rekey(SettingsArgs),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Policy file tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check a policy file; exits non-zero naming the line of the first problem.
    Check {
        /// The policy file (YAML).
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit trail's hash chain; exits non-zero naming the first gap or edit.
    Verify(SettingsArgs),
}

#[derive(Args)]
struct SettingsArgs {
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Address to listen on.
    #[arg(long, env = "OG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    settings: Settings,
    /// The token's subject (who the caller is).
    #[arg(long, default_value = "local-admin")]
    sub: String,
    /// A scope to grant (repeatable); all scopes when none is given.
    #[arg(long = "scope", value_parser = parse_scope)]
    scopes: Vec<Scope>,
    /// Lifetime, e.g. `1h`, `30m`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let all: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown scope; use one of {}", all.join(", "))
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    telemetry::init(&cli.log.log_format, &cli.log.log);
    let command = match cli.command.take() {
        Some(command) => command,
        // No subcommand: serve, with `serve`'s flags read from the environment.
        None => match Cli::parse_from(std::env::args().take(1).chain(["serve".to_owned()])).command
        {
            Some(command) => command,
            None => return ExitCode::FAILURE,
        },
    };
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(SettingsArgs { settings }) => {
            let store = store::connect(&settings.database_url)
                .await
                .context("opening the store")?;
            store.migrate().await.context("applying migrations")?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Policy(PolicyCommand::Check { file }) => {
            let policy = openai_governor::service::policy::load(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "{}: {} caller(s), {} rule(s): valid",
                file.display(),
                policy.callers.len(),
                policy.rules.len()
            );
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&http::openapi())?);
            Ok(())
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => {
            openai_governor_sandbox::run_cli(args, app::shutdown_signal()).await?;
            Ok(())
        }
        Command::Token(args) => {
            let config = Config::load(&args.settings)?;
            let secret = config.hs256_secret().context(
                "this service verifies tokens with RS256/ES256 keys (OG_JWT_PUBLIC_KEY_FILE or \
                 OG_JWT_JWKS_URL): mint tokens with your identity provider instead",
            )?;
            let max = config.jwt.max_lifetime;
            if !max.is_zero() && args.ttl > max {
                anyhow::bail!(
                    "--ttl {} exceeds OG_JWT_MAX_LIFETIME ({}): the service would refuse the token",
                    humantime::format_duration(args.ttl),
                    humantime::format_duration(max)
                );
            }
            let scopes = if args.scopes.is_empty() {
                Scope::ALL.to_vec()
            } else {
                args.scopes
            };
            let token = mint_hs256(
                secret,
                &args.sub,
                &scopes,
                args.ttl,
                config.jwt.issuer.as_deref(),
                config.jwt.audience.as_deref(),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify(SettingsArgs { settings })) => {
            audit_verify(&settings).await
        }
        Command::Rekey(SettingsArgs { settings }) => {
            let config = Config::load(&settings)?;
            let store = store::connect(&config.database_url)
                .await
                .context("opening the store")?;
            store.migrate().await.context("applying migrations")?;
            let report = service::rekey::rekey(store.as_ref(), &config.key_ring).await?;
            println!(
                "rekey to key version {}: {} examined, {} re-encrypted, {} changed concurrently, {} failed",
                config.key_ring.current_version(),
                report.examined,
                report.resealed,
                report.raced,
                report.failed.len()
            );
            if report.failed.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "these connections could not be decrypted with the configured keys: {}",
                    report.failed.join(", ")
                )
            }
        }
    }
}

/// Reads the whole chain (no migration: a read-only role can run it).
async fn audit_verify(settings: &Settings) -> anyhow::Result<()> {
    let store = store::connect(&settings.database_url)
        .await
        .context("opening the store")?;
    let report = service::audit::verify_chain(store.as_ref())
        .await
        .context("reading the audit trail")?;
    println!("head: seq {} hash {}", report.head.seq, report.head.hash);
    println!(
        "{} chained entries verified; {} entries from before the chain are not covered",
        report.verified, report.legacy
    );
    match report.problem {
        None => {
            println!("audit trail intact");
            Ok(())
        }
        Some(problem) => anyhow::bail!("audit trail broken: {problem}"),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.settings)?;
    if let Some(path) = &config.dev.encryption_key_file {
        tracing::warn!(
            path = %path.display(),
            "DEVELOPMENT SETUP: admin keys are encrypted with a key kept in the data directory. \
             In production use Postgres and set OG_ENCRYPTION_KEYS."
        );
    }
    if config.dev.jwt_secret_file.is_some() {
        tracing::warn!(
            "DEVELOPMENT SETUP: caller tokens are HS256 with a generated secret. Mint one with \
             `openai-governor token --scope connections:read --scope connections:write`."
        );
    }
    if config.policy.enforced() {
        tracing::info!("policy in force: callers may do only what OG_POLICY_FILE allows");
    } else {
        tracing::warn!(
            "NO POLICY: OG_POLICY_FILE is not set, so every token with a scope may use it on \
             every connection (any role, any duration, any caller's grants). Set OG_POLICY_FILE \
             before handing the service to more than one caller."
        );
    }
    let backend = config
        .database_url
        .split(':')
        .next()
        .unwrap_or("")
        .to_owned();
    let app = app::build(config).await.context("starting")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, %backend, "listening");
    println!("listening on http://{addr}");
    let _scheduler = app.spawn_scheduler();
    let _grant_worker = app.spawn_grant_worker();
    let _reloader = app::reload_policy_on_sighup(app.state.policy.clone());
    app::serve(listener, app.router, app::shutdown_signal()).await?;
    Ok(())
}
