'use strict';
// KiteError: what calls reject with, what the binding throws, and what a handler throws to
// send a particular error kind to its caller.

/** The wire error kinds of the protocol (any other string is a custom kind). */
const KINDS = new Set([
  'methodNotFound',
  'argumentError',
  'genericError',
  'authenticationError',
  'requestLimitError',
  'timeout',
  'disconnect',
  'sendError',
  'invalidResponse',
]);

class KiteError extends Error {
  /**
   * @param {string} type the error kind: a wire kind (`argumentError`, …), a local one
   *   (`dialError`, `configError`, …) or your own
   * @param {string} message
   * @param {{ appCode?: string, requestId?: string, cause?: unknown }} [options]
   */
  constructor(type, message, options) {
    super(message === undefined || message === null ? '' : String(message),
      options && options.cause !== undefined ? { cause: options.cause } : undefined);
    const kind = type ? String(type) : 'genericError';
    this.type = kind;
    this.code = kind;
    if (options && options.appCode) this.appCode = String(options.appCode);
    if (options && options.requestId) this.requestId = String(options.requestId);
  }

  /** Whether `type` is one of the protocol's own error kinds. */
  static isWireKind(type) {
    return KINDS.has(type);
  }
}
Object.defineProperty(KiteError.prototype, 'name', {
  value: 'KiteError', writable: true, enumerable: false, configurable: true,
});

/** `new KiteError(type, message, { appCode })`, as a function. */
function kiteError(type, message, appCode) {
  const e = new KiteError(type, message, appCode ? { appCode } : undefined);
  Error.captureStackTrace(e, kiteError);
  return e;
}

/**
 * Gives the error `e` (made by the native side, which has no JavaScript stack) the stack of
 * `site`, an object captured where the call was made.
 */
function atCallSite(e, site) {
  if (e instanceof Error && typeof site.stack === 'string') {
    const frames = site.stack.slice(site.stack.indexOf('\n') + 1);
    Object.defineProperty(e, 'stack', {
      value: `${e.name}: ${e.message}\n${frames}`, writable: true, enumerable: false, configurable: true,
    });
  }
  return e;
}

module.exports = { KiteError, kiteError, atCallSite };
