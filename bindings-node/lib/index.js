'use strict';
// The package's entry: the native addon (loaded by the generated `../index.js`) plus the
// parts of the binding written in JavaScript — the `KiteError` and `Request` classes, the
// callback runner of every kite's bridge, the call-site stacks of rejected calls and the
// JavaScript logger.

const native = require('../index.js');
const { KiteError, kiteError, atCallSite } = require('./errors.js');
const { makeBridge, traces } = require('./bridge.js');
const { Request } = require('./request.js');

native.__kiteSetup(KiteError, makeBridge);

/**
 * Replaces the promise-returning method `name` of `target` with one whose rejection carries
 * the stack of its caller (errors made on the native side have none).
 */
function withCallSite(target, name) {
  const fn = target[name];
  if (typeof fn !== 'function') throw new Error(`kite-rs: the native ${name} is missing`);
  const wrapped = {
    [name](...args) {
      const site = {};
      Error.captureStackTrace(site, wrapped);
      return fn.apply(this, args).then(undefined, (e) => { throw atCallSite(e, site); });
    },
  }[name];
  Object.defineProperty(target, name, { value: wrapped, writable: true, configurable: true });
}

const PROMISES = {
  Client: ['dial', 'dialForever', 'tell', 'waitConnected'],
  Connection: ['tell'],
  Kite: ['listen', 'register', 'registerForever', 'registerHttp', 'registerHttpForever',
    'getKites', 'getToken', 'getKey', 'sendWebRTC', 'registerToProxy', 'registerToTunnel'],
  Kontrol: ['listen', 'newKiteKey', 'publicKey', 'rotateKey'],
};
/**
 * Makes the traced request a handler serves (if any) the parent of the calls it makes with
 * `tell` on instances of `cls` (the native `tell` reads it while it runs).
 */
function tracedTell(cls) {
  const fn = cls.prototype.tell;
  const tell = {
    tell(...args) {
      const parent = traces.getStore();
      if (parent === undefined) return fn.apply(this, args);
      native.__traceEnter(parent);
      try {
        return fn.apply(this, args);
      } finally {
        native.__traceLeave();
      }
    },
  }.tell;
  Object.defineProperty(cls.prototype, 'tell', { value: tell, writable: true, configurable: true });
}
tracedTell(native.Client);
tracedTell(native.Connection);

for (const [cls, names] of Object.entries(PROMISES)) {
  for (const name of names) {
    if (typeof native[cls].prototype[name] === 'function') withCallSite(native[cls].prototype, name);
  }
}
// (`Kontrol.create`, a static method, cannot be replaced: the addon defines it read-only.)

/**
 * Sends the core's log records at `level` and above (`error`, `warn`, `info`, `debug`,
 * `trace`; default `info`) to `logger({ level, target, message })`; `null` stops. A logger
 * that throws is reported on stderr, never to the core.
 */
function setLogger(logger, level) {
  if (logger === null || logger === undefined) {
    native.setLogger(null, level);
    return;
  }
  if (typeof logger !== 'function') throw new TypeError('setLogger: the logger must be a function or null');
  native.setLogger((record) => {
    try {
      logger(record);
    } catch (e) {
      console.error('kite-rs: the logger threw:', e);
    }
  }, level);
}

module.exports.Client = native.Client;
module.exports.Connection = native.Connection;
module.exports.Kite = native.Kite;
module.exports.Kontrol = native.Kontrol;
module.exports.Method = native.Method;
module.exports.Request = Request;
module.exports.KiteError = KiteError;
module.exports.kiteError = kiteError;
module.exports.setLogger = setLogger;
module.exports.flushTraces = native.flushTraces;
