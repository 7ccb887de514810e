//! `om config show`.

use crate::args::ShowArgs;
use crate::error::{CliError, ExitCode};
use crate::output::Out;

/// Prints the effective configuration, secrets masked; warnings (unknown
/// or deprecated options) are logged on stderr while loading.
#[cfg(feature = "config")]
pub(crate) fn show(a: ShowArgs, out: &Out) -> Result<ExitCode, CliError> {
    let mut loader = om::config::ConfigLoader::new().config_files(a.config.iter().cloned());
    for d in &a.config_dir {
        loader = loader.config_dir(d.clone());
    }
    let cfg = loader.load()?;
    crate::connect::register_config_secrets(&cfg);
    // render_effective masks secrets itself; the scrub is a second net.
    let text = crate::error::redact(&cfg.render_effective());
    out.line(text.trim_end())
        .map_err(crate::output::write_error)?;
    Ok(ExitCode::Ok)
}

/// Without the `config` feature there is nothing to show.
#[cfg(not(feature = "config"))]
pub(crate) fn show(_a: ShowArgs, _out: &Out) -> Result<ExitCode, CliError> {
    Err(CliError::config(
        "`om config show` needs the `config` feature; this om was built without it",
    ))
}
