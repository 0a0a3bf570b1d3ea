// The JavaScript side of a kite's bridge (src/bridge.rs), evaluated once per kite with the
// native settle(id, value, failed), info(key, field) and forget(key); returns
// [dispatch, release]. Not a module: one function expression.
(function (settle, info, forget) {
  'use strict';
  const requests = new Map();
  const collected = new FinalizationRegistry(forget);
  const cache = (obj, name, value) => {
    Object.defineProperty(obj, name, { value, enumerable: true, configurable: true, writable: true });
    return value;
  };
  class Request {
    #key;
    constructor(key, id, method, username, args) {
      this.#key = key;
      this.id = id;
      this.method = method;
      this.username = username;
      this.args = args;
    }
    get auth() { return cache(this, 'auth', info(this.#key, 0)); }
    get kite() { return cache(this, 'kite', info(this.#key, 1)); }
    get client() { return cache(this, 'client', info(this.#key, 2)); }
    get signal() { return cache(this, 'signal', info(this.#key, 3)); }
  }
  function dispatch(handler, key, id, a, b, rid, method, username, args) {
    let req;
    if (rid !== undefined) {
      req = new Request(key, rid, method, username, args);
      requests.set(key, req);
      collected.register(req, key);
    } else if (typeof key === 'number') {
      req = requests.get(key);
    } else {
      req = key;
    }
    let r;
    try {
      r = handler(req, a, b);
    } catch (e) {
      settle(id, e, true);
      return;
    }
    if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
      r.then((v) => { settle(id, v, false); }, (e) => { settle(id, e, true); });
    } else {
      settle(id, r, false);
    }
  }
  function release(keys) {
    for (let i = 0; i < keys.length; i++) requests.delete(keys[i]);
  }
  return [dispatch, release];
})
