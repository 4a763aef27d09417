//! A report written to disk: `report.json`, the charts (`charts.rs`) and `report.md`, which
//! links them. Kept apart from `report.rs` so the charts, which read a report, and the report
//! do not depend on each other.

use std::path::Path;

use anyhow::Context;

use crate::report::Report;

impl Report {
    /// Writes `report.json`, the charts and `report.md` into `dir`; returns the charts' file
    /// names. A chart that cannot be drawn (no font on this machine) is logged, not fatal.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)
            .context("writing report.json")?;
        let charts = match crate::charts::draw(self, dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("charts not drawn: {e:#}");
                Vec::new()
            }
        };
        std::fs::write(dir.join("report.md"), self.markdown(&charts))
            .context("writing report.md")?;
        Ok(charts)
    }
}
