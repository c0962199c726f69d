// A socket.io-client session driven by one JSON argument, for the sioctl end-to-end tests.
//
//   node client.js '{"url": "http://127.0.0.1:PORT", "localAddress": "127.0.0.5",
//                    "transports": ["polling", "websocket"], "timeout": 10000,
//                    "actions": [{"op": "upgrade"}, {"op": "emit", "event": "whoami"},
//                                {"op": "ready"}, {"op": "wait", "event": "news"}]}'
//
// Prints one JSON object per line: {"op": "connect", "id", "opened_with", "transport"} once
// connected, then one line per action, then {"op": "done"}; on failure {"op": "error", "message"}
// and exit status 1.
// Actions:
//   emit    {event, args: [...], ack: true}  -> {"op": "emit", "event", "ack": <reply>}
//            (ack false: no reply awaited -> {"op": "emit", "event"})
//   wait    {event, timeout}   -> {"op": "wait", "event", "args": [...]}  (next such event,
//                                 including ones that arrived before the action started)
//   upgrade {timeout}          -> {"op": "upgrade", "transport": "websocket"}
//   ready   {}                 -> {"op": "ready"}  (lets the caller act at this point)
//   sleep   {ms}               -> {"op": "sleep"}
//   state   {}                 -> {"op": "state", "connected", "transport", "pings",
//                                 "disconnects": [reasons], "ping_interval"}  (pings: engine.io
//                                 pings received since connect; ping_interval: the value the
//                                 server advertised in its OPEN packet, in ms; extensions:
//                                 the websocket's negotiated extensions)
// Spec option "auth": the CONNECT auth payload (e.g. {"userId": ..., "app", "timestamp", "sign"}).
// Spec option "interactive": after "actions", more actions come on stdin, one JSON object a
// line; the session ends (done) when stdin closes. For the flows where the next step depends on
// what another client said. One more action for those:
//   take    {event, timeout}   -> {"op": "take", "event", "args": [...] or null}  (a wait that
//                                 reports null instead of failing when nothing comes in time)
//   blip    {}                 -> {"op": "blip", "id", "recovered"}  (closes the connection
//                                 without a word and waits until it is back; needs the spec's
//                                 "reconnection": true)
"use strict";

const http = require("http");
const { io } = require("socket.io-client");

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

async function main() {
  const spec = JSON.parse(process.argv[2] || "{}");
  const timeout = spec.timeout || 10000;
  const options = {
    transports: spec.transports || ["polling", "websocket"],
    // "reconnection": true for the blip action (connection state recovery).
    reconnection: spec.reconnection === true,
    reconnectionDelay: 300,
    timeout,
  };
  if (spec.auth !== undefined) {
    options.auth = spec.auth;
  }
  if (spec.localAddress) {
    // localAddress alone reaches only the websocket transport; an agent binds both.
    options.agent = new http.Agent({ localAddress: spec.localAddress, keepAlive: true });
    options.localAddress = spec.localAddress;
  }
  const socket = io(spec.url, options);
  // The transport the engine.io session opened with (it may upgrade before "connect").
  let openedWith = null;
  socket.io.on("open", () => {
    openedWith = socket.io.engine.transport.name;
  });
  // What the state action reports: pings the engine received, and why the socket disconnected.
  let pings = 0;
  const disconnects = [];
  socket.io.on("ping", () => {
    pings += 1;
  });
  socket.on("disconnect", (reason) => disconnects.push(reason));

  // Every event from connect on, so a wait also sees events that arrived before it began.
  const inbox = [];
  const waiters = [];
  socket.onAny((event, ...args) => {
    const index = waiters.findIndex((w) => w.event === event);
    if (index >= 0) {
      const [waiter] = waiters.splice(index, 1);
      waiter.resolve(args);
    } else {
      inbox.push({ event, args });
    }
  });
  function nextEvent(event) {
    const index = inbox.findIndex((m) => m.event === event);
    if (index >= 0) {
      return Promise.resolve(inbox.splice(index, 1)[0].args);
    }
    return new Promise((resolve) => waiters.push({ event, resolve }));
  }
  function takeEvent(event, ms) {
    const index = inbox.findIndex((m) => m.event === event);
    if (index >= 0) {
      return Promise.resolve(inbox.splice(index, 1)[0].args);
    }
    return new Promise((resolve) => {
      const waiter = { event, resolve: (args) => { clearTimeout(timer); resolve(args); } };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        resolve(null);
      }, ms);
      waiters.push(waiter);
    });
  }

  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    }),
    timeout,
    "connect",
  );
  print({
    op: "connect",
    id: socket.id,
    opened_with: openedWith,
    transport: socket.io.engine.transport.name,
  });

  async function perform(action) {
    const ms = action.timeout || timeout;
    switch (action.op) {
      case "emit": {
        const args = action.args || [];
        if (action.ack === false) {
          socket.emit(action.event, ...args);
          print({ op: "emit", event: action.event });
        } else {
          const reply = await withTimeout(
            socket.timeout(ms).emitWithAck(action.event, ...args),
            ms + 1000,
            `ack of ${action.event}`,
          );
          print({ op: "emit", event: action.event, ack: reply });
        }
        break;
      }
      case "wait": {
        const args = await withTimeout(nextEvent(action.event), ms, `event ${action.event}`);
        print({ op: "wait", event: action.event, args });
        break;
      }
      case "take":
        print({ op: "take", event: action.event, args: await takeEvent(action.event, ms) });
        break;
      case "upgrade": {
        const engine = socket.io.engine;
        if (engine.transport.name !== "websocket") {
          await withTimeout(
            new Promise((resolve) => engine.once("upgrade", resolve)),
            ms,
            "websocket upgrade",
          );
        }
        print({ op: "upgrade", transport: engine.transport.name });
        break;
      }
      case "blip": {
        // Close the Engine.IO connection without a word (the server sees "transport close"),
        // then wait for the reconnection (spec "reconnection": true).
        const back = new Promise((resolve) => socket.once("connect", resolve));
        socket.io.engine.close();
        await withTimeout(back, timeout, "reconnect after a blip");
        print({ op: "blip", id: socket.id, recovered: socket.recovered });
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
        const engine = socket.io.engine;
        print({
          op: "state",
          connected: socket.connected,
          transport: engine ? engine.transport.name : null,
          pings,
          disconnects,
          // engine.io-client keeps the handshake's value in a private field.
          ping_interval: engine ? (engine._pingInterval ?? engine.pingInterval ?? null) : null,
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
  socket.disconnect();
  print({ op: "done" });
  process.exit(0);
}

main().catch((err) => fail(err && err.message ? err.message : err));
