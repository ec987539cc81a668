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

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ConfigArgs>),
    /// Print the OpenAPI document.
    Openapi,
    /// Run the benchmark suite against an in-process server and print a report.
    Bench(weir::bench::BenchArgs),
}

fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
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
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            weir::run(listener, config, shutdown_signal()).await
        }
        Command::Openapi => {
            print!("{}", weir::http::openapi::spec_json());
            Ok(())
        }
        Command::Bench(args) => {
            init_logs(&cli.log_format);
            weir::bench::main(args).await
        }
    }
}
