//! The in-memory `fake://` driver. (Being written.)

use crate::{BoxFuture, DriverConfig, DriverFactory, DynDriver};
use std::sync::Arc;

/// Opens `fake://` drivers.
#[derive(Debug, Default, Clone, Copy)]
pub struct FakeDriverFactory;

impl DriverFactory for FakeDriverFactory {
    fn schemes(&self) -> &'static [&'static str] {
        &["fake"]
    }
    fn open(&self, _config: DriverConfig) -> BoxFuture<'static, om_core::Result<Arc<dyn DynDriver>>> {
        Box::pin(async { Err(om_core::Error::Configuration("fake driver not written yet".into())) })
    }
}
