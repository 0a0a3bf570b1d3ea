//! The parts of the binding written in JavaScript (`bindings-node/lib/`): the `KiteError`
//! class and the factory of every kite's bridge functions. The package entry
//! (`lib/index.js`) hands them over once per JavaScript environment (main thread or worker)
//! through `__kiteSetup`; they are kept in the environment's instance data.

use napi::bindgen_prelude::Function;
use napi::Env;

use crate::jsfn::{keep, JsFn};

/// What `lib/index.js` handed over.
pub(crate) struct JsParts {
    /// `class KiteError extends Error` (`lib/errors.js`).
    pub(crate) kite_error: JsFn,
    /// `makeBridge(settle, info, forget, report)` (`lib/bridge.js`).
    pub(crate) make_bridge: JsFn,
}

/// Called once by the package entry (`lib/index.js`); not for users.
#[napi(js_name = "__kiteSetup", skip_typescript)]
pub fn kite_setup(
    env: &Env,
    kite_error: Function<'_>,
    make_bridge: Function<'_>,
) -> napi::Result<()> {
    let parts = JsParts {
        kite_error: keep(&kite_error)?,
        make_bridge: keep(&make_bridge)?,
    };
    env.set_instance_data(parts, (), |_| {})
}

/// The JavaScript parts of this environment, once the package entry set them up.
pub(crate) fn parts(env: &Env) -> Option<&'static JsParts> {
    env.get_instance_data::<JsParts>()
        .ok()
        .flatten()
        .map(|p| &*p)
}
