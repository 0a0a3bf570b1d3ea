'use strict';
// Request: the object a kite's handlers get for one call. The kite makes one per call (with
// `newRequest`, from the bridge of lib/bridge.js) and hands the same object to the method's
// pre handlers, main handler, post handlers and final functions; the fields that need the
// native side (`auth`, `kite`, `client`, `signal`) are fetched on first use and kept.

/** Only `newRequest` passes this, so user code cannot make requests the kite does not know. */
const MADE_BY_KITE = Symbol('kite-rs request');

/** Defines `name` on `obj` as a plain data property (replacing the getter) and returns it. */
function keep(obj, name, value) {
  Object.defineProperty(obj, name, { value, enumerable: true, configurable: true, writable: true });
  return value;
}

class Request {
  #key;
  #info;

  /**
   * Not for users: the kite makes every request (`new Request()` throws a `TypeError`).
   * @param {symbol} token
   * @param {(key: number, field: number) => unknown} info the native lookup of the lazy fields
   * @param {number} key the native request's key
   * @param {string} id
   * @param {string} method
   * @param {string} username
   * @param {any[]} args
   */
  constructor(token, info, key, id, method, username, args) {
    if (token !== MADE_BY_KITE) {
      throw new TypeError('kite-rs: requests are made by the kite, one per call; do not construct them');
    }
    this.#key = key;
    this.#info = info;
    this.id = id;
    this.method = method;
    this.username = username;
    this.args = args;
  }

  /** The authentication the caller sent, if any. */
  get auth() { return keep(this, 'auth', this.#info(this.#key, 0)); }

  /** The caller's kite identity. */
  get kite() { return keep(this, 'kite', this.#info(this.#key, 1)); }

  /** The connection to the caller. */
  get client() { return keep(this, 'client', this.#info(this.#key, 2)); }

  /** An `AbortSignal` that fires when the caller disconnects (or the kite closes). */
  get signal() { return keep(this, 'signal', this.#info(this.#key, 3)); }
}

/** A request of the kite whose native `info(key, field)` looks up the lazy fields. */
function newRequest(info, key, id, method, username, args) {
  return new Request(MADE_BY_KITE, info, key, id, method, username, args);
}

module.exports = { Request, newRequest };
