//! The benchmark harness (`weir bench`): placeholder until the suite lands.

/// Options of `weir bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Scale factor for the amount of work.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

/// Runs the suite.
pub async fn main(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
