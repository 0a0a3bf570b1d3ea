'use strict';
// The JavaScript side of a kite's bridge (src/bridge.rs): the map that keeps one `Request`
// (lib/request.js) per call for all of its handlers, `dispatch`, which runs a handler and
// settles its pending call with what it returns, resolves or throws, and `invoke`, which runs a callback or listener and reports what it throws or
// rejects with instead of letting it end the process.

const { AsyncLocalStorage } = require('node:async_hooks');
const { newRequest } = require('./request.js');

/**
 * The traced request a handler serves (an opaque native value, see src/traces.rs), for the
 * calls the handler makes (lib/index.js hands it to the native `tell`).
 */
const traces = new AsyncLocalStorage();

/**
 * Made once per kite with the native `settle(id, value, failed)`, `info(key, field)`,
 * `forget(key)` and `report(error) -> delivered`; returns `[dispatch, release, invoke,
 * failed]`.
 */
function makeBridge(settle, info, forget, report) {
  const requests = new Map();
  const collected = new FinalizationRegistry(forget);
  const thenable = (r) => r !== null && (typeof r === 'object' || typeof r === 'function') &&
    typeof r.then === 'function';

  function dispatch(handler, key, id, a, b, rid, method, username, args, trace) {
    let req;
    if (rid !== undefined) {
      req = newRequest(info, key, rid, method, username, args);
      requests.set(key, req);
      collected.register(req, key);
    } else if (typeof key === 'number') {
      req = requests.get(key);
    } else {
      req = key;
    }
    let r;
    try {
      r = trace === undefined ? handler(req, a, b) : traces.run(trace, handler, req, a, b);
    } catch (e) {
      settle(id, e, true);
      return;
    }
    if (thenable(r)) {
      r.then((v) => { settle(id, v, false); }, (e) => { settle(id, e, true); });
    } else {
      settle(id, r, false);
    }
  }

  function release(keys) {
    for (let i = 0; i < keys.length; i++) requests.delete(keys[i]);
  }

  function failed(e) {
    let delivered = false;
    try {
      delivered = report(e);
    } catch (inner) {
      // An 'error' listener threw: show both rather than lose either.
      console.error('kite-rs: an error listener threw:', inner);
    }
    if (!delivered) console.error('kite-rs: a callback failed (add kite.on("error", …) to handle it):', e);
  }

  function invoke(fn, ...args) {
    let r;
    try {
      r = fn(...args);
    } catch (e) {
      failed(e);
      return;
    }
    if (thenable(r)) r.then(undefined, failed);
  }

  return [dispatch, release, invoke, failed];
}

module.exports = { makeBridge, traces };
