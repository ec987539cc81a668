//! The `weir` command: `weir serve`, `weir openapi`, `weir bench`.

use clap::{Parser, Subcommand};

/// mimalloc: the request path allocates small buffers on every worker thread, where glibc's
/// allocator showed ~10 % of CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

use weir::config::{Config, ConfigArgs};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Kafka's client APIs over plain HTTP, on an embedded RocksDB log"
)]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, env = "WEIR_LOG_FORMAT", default_value = "text", global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

/// What `weir serve --help` says after the flags: the settings that have no flag.
const SECRETS_HELP: &str =
    "Secrets are read from the environment only, never from flags (which other users can see in ps):
  WEIR_ADMIN_TOKEN       the bootstrap admin token, at least 16 characters (or --admin-token-file); turns
                         authentication on
  WEIR_JWT_HS256_SECRET  the HS256 key that signs JWT bearer tokens; turns authentication on
Grants of certificate and JWT principals are [[grants]] tables in the --config file.
Logging: RUST_LOG (e.g. info, weir=debug).";

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = SECRETS_HELP)]
    Serve(Box<ConfigArgs>),
    /// Print the OpenAPI document.
    Openapi,
    /// Run the benchmark suite against an in-process server and print a report.
    Bench(Box<weir::bench::BenchArgs>),
}

fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    // Colours only for a person at a terminal, never in a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Binds the listening socket, saying which address could not be had and how to choose another.
async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr}: another process is listening there; stop it, or choose another address \
with --listen (or WEIR_LISTEN, or listen in the config file)"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}; choose another address with --listen")
        }
    })
}

/// Writes `text` to stdout; a reader that stops early (`weir openapi | head`) is not an error.
fn print_ignoring_closed_pipe(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logs(&cli.log_format);
            let config = Config::load(&args)?;
            let listener = bind(config.listen).await?;
            weir::run(listener, config, shutdown_signal()).await
        }
        Command::Openapi => print_ignoring_closed_pipe(&weir::http::openapi::spec_json()),
        Command::Bench(args) => {
            init_logs(&cli.log_format);
            weir::bench::main(*args).await
        }
    }
}
