// Preload (`node -r ./loopback.cjs ...`) that forces servers to bind 127.0.0.1.
// @modelcontextprotocol/server-everything calls app.listen(PORT), which binds
// every interface; tests must only ever listen on loopback.
//
// With LOOPBACK_READY=1 it also prints `READY http://127.0.0.1:<port>` on stdout
// when the first server starts listening, because server-everything started
// with PORT=0 only logs the port it was asked for, not the one it got.
'use strict';

const net = require('node:net');

const originalListen = net.Server.prototype.listen;
let announced = false;

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const [first] = args;
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen({ port, host, ... }): a path (unix socket) or handle is left alone.
    if (first.path === undefined && first.handle === undefined && first._handle === undefined && first.fd === undefined) {
      args[0] = { ...first, host: '127.0.0.1' };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/u.test(first))) {
    // listen(port[, host][, backlog][, callback]): drop any given host, insert loopback.
    const rest = args.slice(1);
    if (typeof rest[0] === 'string') {
      rest.shift();
    }
    args.splice(0, args.length, first, '127.0.0.1', ...rest);
  } else if (first === undefined || typeof first === 'function') {
    // listen() / listen(callback): random port on loopback.
    args.splice(0, 0, 0, '127.0.0.1');
  }
  if (process.env.LOOPBACK_READY === '1' && !announced) {
    announced = true;
    this.once('listening', () => {
      const address = this.address();
      if (address !== null && typeof address === 'object') {
        process.stdout.write(`READY http://127.0.0.1:${address.port}\n`);
      }
    });
  }
  return originalListen.apply(this, args);
};
