//! placeholder
use std::path::Path;
use super::BenchArgs;
use super::platform::Report;
pub(super) async fn run(_args: &BenchArgs, _dir: &Path) -> anyhow::Result<Report> { Ok(Report::new("streams")) }
