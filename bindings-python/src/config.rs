//! A kite's configuration from Python: the keyword arguments of `Kite(…)` go through the
//! core's `kite::server::Options` (times in seconds) onto the configuration from the
//! `KITE_*` environment and `kite.key`.

use kite::server::{Options, TimeUnit};
use kite::{Config, MethodHandling};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::error_to_py;

/// Keyword arguments as the JSON object of the core's options (paths as strings).
pub(crate) fn options_json(options: Option<&Bound<'_, PyDict>>) -> PyResult<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for (k, v) in options.into_iter().flatten() {
        let v = if v.is_instance(&py_pathlike(v.py())?)? {
            v.py().import("os")?.call_method1("fspath", (v,))?
        } else {
            v
        };
        map.insert(k.extract()?, crate::convert::to_json(&v)?);
    }
    Ok(serde_json::Value::Object(map))
}

fn py_pathlike(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("os")?.getattr("PathLike")
}

/// The configuration and the default handling mode of `Kite(name, version, **options)`.
pub(crate) fn from_options(
    py: Python<'_>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Config, Option<MethodHandling>)> {
    let options = Options::from_json(options_json(options)?, TimeUnit::Seconds)
        .map_err(|e| error_to_py(py, &e))?;
    let handling = options.method_handling().map_err(|e| error_to_py(py, &e))?;
    let mut c = py
        .detach(Config::from_env)
        .map_err(|e| error_to_py(py, &e))?;
    options.apply(&mut c).map_err(|e| error_to_py(py, &e))?;
    Ok((c, handling))
}

/// The number of worker threads for plain `def` handlers. Default: CPUs + 4, at most 32.
pub(crate) fn workers(workers: Option<usize>) -> PyResult<usize> {
    let workers = workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() + 4)
            .unwrap_or(8)
            .min(32)
    });
    if workers == 0 {
        return Err(PyValueError::new_err("workers must be at least 1"));
    }
    Ok(workers)
}
