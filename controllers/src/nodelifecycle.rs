//! The nodelifecycle controller (under construction).

use crate::{Ctx, Error};
use std::sync::Arc;

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let _ = ctx;
    std::future::pending().await
}
