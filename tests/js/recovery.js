// A socket.io-client consumer for the connection state recovery tests (tests/e2e/test_recovery.py).
//
//   node recovery.js '{"url": "http://127.0.0.1:PORT", "localAddress": "127.0.0.5",
//                      "room": "r", "expect": 200, "reconnectionDelay": 100,
//                      "blipAt": [], "timeout": 60000}'
//
// Connects (websocket, reconnecting), joins ROOM through the app's "join" event on every
// connection that was not recovered, and collects the EVENT events ("news" by default;
// argument 0: the number; with recovery the last argument is the offset) until EXPECT of them
// came in. After the Nth event for each N in blipAt (and blipDelay ms more) it closes its Engine.IO connection without a word (the server sees "transport close") and
// comes back after reconnectionDelay.
// Prints one JSON line per event of interest:
//   {"op": "connect", "id", "recovered", "count"}  on every connection (count: events so far)
//   {"op": "joined"}                               once the room is joined
//   {"op": "disconnect", "reason", "count"}
//   {"op": "got", "count"}                         after the Nth event for each N in reportAt
//   {"op": "done", "got": [numbers in arrival order], "offsets": [last arguments]}
// and exits; on failure or timeout {"op": "error", "message"} and exit status 1.
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

const spec = JSON.parse(process.argv[2] || "{}");
const options = {
  transports: ["websocket"],
  reconnection: true,
  reconnectionDelay: spec.reconnectionDelay || 100,
  reconnectionDelayMax: spec.reconnectionDelay || 100,
  randomizationFactor: 0,
  timeout: 5000,
};
if (spec.localAddress) {
  options.agent = new http.Agent({ localAddress: spec.localAddress });
  options.localAddress = spec.localAddress;
}
const socket = io(spec.url, options);
const got = [];
const offsets = [];
const blips = new Set(spec.blipAt || []);
const reports = new Set(spec.reportAt || []);

setTimeout(() => fail(`timed out with ${got.length} of ${spec.expect} events`), spec.timeout || 60000);

socket.on("connect", () => {
  print({ op: "connect", id: socket.id, recovered: socket.recovered, count: got.length });
  if (!socket.recovered) {
    // A new session (the first, or one that could not be recovered) has no rooms yet.
    socket.emit("join", spec.room, () => print({ op: "joined" }));
  }
});
socket.on("connect_error", (err) => print({ op: "connect_error", message: String(err.message) }));
socket.on("disconnect", (reason) => print({ op: "disconnect", reason, count: got.length }));
socket.on(spec.event || "news", (...args) => {
  got.push(args[0]);
  offsets.push(args.length > 1 ? args[args.length - 1] : null);
  if (reports.has(got.length)) {
    // The client holds an offset from now on (set as soon as this listener returns).
    print({ op: "got", count: got.length });
  }
  if (blips.has(got.length)) {
    // blipDelay: stay connected and quiet that long first.
    setTimeout(() => socket.io.engine.close(), spec.blipDelay || 0);
  }
  if (got.length === spec.expect) {
    // Later, not now: the events a recovered socket missed are handed to it before its
    // "connect" event fires, and that line must be printed too.
    setImmediate(() => {
      print({ op: "done", got, offsets });
      socket.disconnect();
      process.exit(0);
    });
  }
});
