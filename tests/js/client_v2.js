// A socket.io-client@2 session (Socket.IO v2, Engine.IO protocol 3) driven by one JSON argument,
// for the sioctl end-to-end tests of --allow-eio3. The same driver shape as client.js:
//
//   node client_v2.js '{"url": "http://127.0.0.1:PORT", "localAddress": "127.0.0.5",
//                       "transports": ["polling", "websocket"], "timeout": 10000,
//                       "query": {"token": "good"}, "namespaces": [{"name": "/chat"}],
//                       "actions": [{"op": "emit", "event": "whoami"}, {"op": "ready"},
//                                   {"op": "wait", "event": "news"}]}'
//
// Prints one JSON object per line: {"op": "connect", "id", "engine_id", "opened_with",
// "transport", "namespaces": {name: id}} once every socket is connected, then one line per
// action, then {"op": "done"}; on failure {"op": "error", "message"} and exit status 1.
// With "expect_refusal": true, the first connection error is the expected outcome: it prints
// {"op": "refused", "message", "description"} and exits 0.
// Spec "namespace" (default "/"): the main socket's namespace; "namespaces": more sockets on
// the same connection, each {"name", "query", "expect_error": true}; an expected error prints
// {"op": "namespace_error", "namespace", "error"} instead of waiting for its connect.
// Actions:
//   emit    {event, args: [...], ack: true, namespace} -> {"op": "emit", "event", "ack": <reply>}
//   wait    {event, namespace, timeout}   -> {"op": "wait", "event", "args": [...]}
//   upgrade {timeout}          -> {"op": "upgrade", "transport": "websocket"}
//   ready   {}                 -> {"op": "ready"}
//   sleep   {ms}               -> {"op": "sleep"}
//   state   {}                 -> {"op": "state", "connected", "transport", "pings", "pongs",
//                                 "disconnects", "ping_interval"}  (pings the client sent and
//                                 pongs it received since connect; ping_interval: the server's
//                                 OPEN packet value, in ms; extensions: the websocket's
//                                 negotiated extensions)
//   take    {event, namespace, timeout} -> {"op": "take", "event", "args": [...] or null}
//                                (a wait that reports null instead of failing in time)
// Spec "interactive": after "actions", more come on stdin, one JSON object a line; the session
// ends (done) when stdin closes (as in client.js).
// Binary: {"$binary": "<base64>"} in args is sent as a Buffer, and a Buffer received is printed
// the same way.
"use strict";

const http = require("http");
const io = require("socket.io-client-v2");

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(message) {
  print({ op: "error", message: String(message) });
  process.exit(1);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// JSON <-> values with Buffers, so binary can cross the command line and stdout.
function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value && typeof value === "object") {
    if (typeof value.$binary === "string" && Object.keys(value).length === 1) {
      return Buffer.from(value.$binary, "base64");
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = fromJson(v);
    return out;
  }
  return value;
}

function toJson(value) {
  if (Buffer.isBuffer(value)) return { $binary: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $binary: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJson(v);
    return out;
  }
  return value;
}

// Every event a socket receives from connect on, so a wait also sees earlier ones.
function recorder(socket) {
  const inbox = [];
  const waiters = [];
  const onevent = socket.onevent;
  socket.onevent = function (packet) {
    const [event, ...args] = packet.data || [];
    const index = waiters.findIndex((w) => w.event === event);
    if (index >= 0) {
      waiters.splice(index, 1)[0].resolve(args);
    } else {
      inbox.push({ event, args });
    }
    onevent.call(this, packet);
  };
  function next(event) {
    const index = inbox.findIndex((m) => m.event === event);
    if (index >= 0) return Promise.resolve(inbox.splice(index, 1)[0].args);
    return new Promise((resolve) => waiters.push({ event, resolve }));
  }
  // next(event), or null after ms (the waiter then withdrawn, so it takes nothing later).
  function take(event, ms) {
    const index = inbox.findIndex((m) => m.event === event);
    if (index >= 0) return Promise.resolve(inbox.splice(index, 1)[0].args);
    return new Promise((resolve) => {
      const waiter = { event, resolve: (args) => { clearTimeout(timer); resolve(args); } };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        resolve(null);
      }, ms);
      waiters.push(waiter);
    });
  }
  return { next, take };
}

async function main() {
  const spec = JSON.parse(process.argv[2] || "{}");
  const timeout = spec.timeout || 10000;
  const options = {
    transports: spec.transports || ["polling", "websocket"],
    reconnection: false,
    timeout,
  };
  if (spec.localAddress) {
    // The agent binds both transports to the address (the master picks the worker from it).
    options.agent = new http.Agent({ localAddress: spec.localAddress, keepAlive: true });
    options.localAddress = spec.localAddress;
  }
  // The handshake query (io(url, {query})): v2 clients pass their tokens here; a namespace's
  // own "query" goes in its CONNECT packet.
  if (spec.query) options.query = spec.query;
  const manager = new io.Manager(spec.url, options);
  const mainName = spec.namespace || "/";
  const sockets = {};
  const nexts = {};
  const waits = [];
  const extra = spec.namespaces || [];
  const first = { name: mainName, expect_error: spec.expect_error };
  for (const ns of [first, ...extra]) {
    const socket = manager.socket(ns.name, ns.query ? { query: ns.query } : {});
    sockets[ns.name] = socket;
    nexts[ns.name] = recorder(socket);
    waits.push(
      new Promise((resolve, reject) => {
        socket.once("connect", () => resolve({ name: ns.name }));
        // socket.io-client@2 reports a refused namespace as "error" with the packet's data.
        socket.once("error", (error) =>
          ns.expect_error ? resolve({ name: ns.name, error }) : reject(
            new Error(`namespace ${ns.name} refused: ${JSON.stringify(error)}`)));
      }),
    );
  }
  const main = sockets[mainName];
  let openedWith = null;
  let pings = 0;
  let pongs = 0;
  const disconnects = [];
  manager.on("open", () => {
    openedWith = manager.engine.transport.name;
  });
  manager.on("ping", () => { pings += 1; });
  manager.on("pong", () => { pongs += 1; });
  main.on("disconnect", (reason) => disconnects.push(reason));

  let refused;
  const refusal = new Promise((resolve) => { refused = resolve; });
  manager.on("connect_error", (err) => refused(err));
  manager.on("connect_timeout", () => refused(new Error("connect timeout")));
  if (spec.expect_refusal) {
    const err = await withTimeout(Promise.race([refusal, Promise.all(waits)]), timeout,
                                  "a refusal");
    if (Array.isArray(err)) fail("connected although a refusal was expected");
    const description = typeof err.description === "object" ? null : err.description ?? null;
    print({ op: "refused", message: String(err.message), description });
    process.exit(0);
  }
  const outcome = await withTimeout(
    Promise.race([Promise.all(waits), refusal.then((err) => { throw err; })]),
    timeout, "connect");
  const ids = {};
  for (const item of outcome) {
    if (item.error !== undefined) {
      print({ op: "namespace_error", namespace: item.name, error: toJson(item.error) });
    } else {
      ids[item.name] = sockets[item.name].id;
    }
  }
  print({
    op: "connect",
    id: main.id,
    engine_id: manager.engine.id,
    opened_with: openedWith,
    transport: manager.engine.transport.name,
    namespaces: ids,
  });

  async function perform(action) {
    const ms = action.timeout || timeout;
    const socket = sockets[action.namespace || mainName];
    switch (action.op) {
      case "emit": {
        const args = fromJson(action.args || []);
        if (action.ack === false) {
          socket.emit(action.event, ...args);
          print({ op: "emit", event: action.event });
        } else {
          const reply = await withTimeout(
            new Promise((resolve) => socket.emit(action.event, ...args, (...r) => resolve(r))),
            ms, `ack of ${action.event}`);
          print({ op: "emit", event: action.event, ack: toJson(reply.length === 1 ? reply[0] : reply) });
        }
        break;
      }
      case "wait": {
        const args = await withTimeout(nexts[action.namespace || mainName].next(action.event),
                                       ms, `event ${action.event}`);
        print({ op: "wait", event: action.event, args: toJson(args) });
        break;
      }
      case "take": {
        const args = await nexts[action.namespace || mainName].take(action.event, ms);
        print({ op: "take", event: action.event, args: args === null ? null : toJson(args) });
        break;
      }
      case "upgrade": {
        const engine = manager.engine;
        if (engine.transport.name !== "websocket") {
          await withTimeout(new Promise((resolve) => engine.once("upgrade", resolve)), ms,
                            "websocket upgrade");
        }
        print({ op: "upgrade", transport: engine.transport.name });
        break;
      }
      case "ready":
        print({ op: "ready" });
        break;
      case "sleep":
        await new Promise((resolve) => setTimeout(resolve, action.ms || 0));
        print({ op: "sleep" });
        break;
      case "state": {
        const engine = manager.engine;
        print({
          op: "state",
          connected: main.connected,
          transport: engine ? engine.transport.name : null,
          pings,
          pongs,
          disconnects,
          ping_interval: engine ? engine.pingInterval : null,
          // The websocket's negotiated extensions ("permessage-deflate; ..." or ""): ws's.
          extensions: engine && engine.transport.ws ? engine.transport.ws.extensions : null,
        });
        break;
      }
      default:
        throw new Error(`unknown action ${JSON.stringify(action)}`);
    }
  }

  for (const action of spec.actions || []) await perform(action);
  if (spec.interactive) {
    const lines = require("readline").createInterface({ input: process.stdin });
    for await (const line of lines) {
      if (line.trim()) await perform(JSON.parse(line));
    }
  }
  for (const socket of Object.values(sockets)) socket.close();
  print({ op: "done" });
  process.exit(0);
}

main().catch((err) => fail(err && err.message ? err.message : err));
