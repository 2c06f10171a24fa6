//! `report.html`: one self-contained page (summary, per-run timeline, per-iteration
//! bundle diffs and evidence) for one run directory or many, read from disk.
//!
//! Everything in a run directory came from the model or a container and is treated
//! as untrusted: it is made visible (`text`) and escaped by the template; the page's
//! Content-Security-Policy forbids loading or running anything.

mod diff;
mod disk;
mod errors;
mod page;
mod text;
mod view;

use std::path::{Path, PathBuf};

use agent_run_dir::RunDir;

pub use crate::disk::find_run_dirs;
pub use crate::errors::ReportError;

/// The page for the run directories `dirs`, in that order.
pub fn render(dirs: &[PathBuf]) -> Result<String, ReportError> {
    let runs = dirs
        .iter()
        .map(|dir| disk::read_run(dir))
        .collect::<Result<Vec<_>, _>>()?;
    page::render(&view::page(&runs))
}

/// Writes `html` to `path`, whole or not at all: a reader never sees half a page.
pub fn write(path: &Path, html: &str) -> Result<(), ReportError> {
    let error = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let partial = path.with_extension("html.partial");
    std::fs::write(&partial, html).map_err(error)?;
    std::fs::rename(&partial, path).map_err(error)
}

/// Writes `report.html` into the run directory `dir`, from its `report.json`, and
/// returns its path.
pub fn write_run_report(dir: &RunDir) -> Result<PathBuf, ReportError> {
    let html = render(&[dir.root().to_owned()])?;
    let path = dir.report_html();
    write(&path, &html)?;
    Ok(path)
}
