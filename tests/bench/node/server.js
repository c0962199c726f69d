// The Node.js peer of sioctl's benchmarks: a Socket.IO v4 cluster as its docs describe it.
// The primary owns the listening socket and hands each connection to a worker
// (@socket.io/sticky); workers share rooms and emits through the primary
// (@socket.io/cluster-adapter). Same events as tests/bench/apps/bench_app.py.
//
// Usage: node server.js PORT WORKERS   (binds 127.0.0.1 only)
"use strict";

const cluster = require("cluster");
const http = require("http");
const { Server } = require("socket.io");
const { setupMaster, setupWorker } = require("@socket.io/sticky");
const { createAdapter, setupPrimary } = require("@socket.io/cluster-adapter");

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] || 1);

if (cluster.isPrimary) {
  const httpServer = http.createServer();
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
  setupPrimary();
  // sticky passes the first chunk as a Buffer: it needs the structured-clone serialization.
  cluster.setupPrimary({ serialization: "advanced" });
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork({ BENCH_SLOT: String(i) });
  }
  cluster.on("message", (worker, message) => {
    if (message === "bench:ready" && ++ready === workers) {
      httpServer.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
    }
  });
  // A bench run stops the primary with SIGTERM; the workers go with it.
  process.on("SIGTERM", () => {
    for (const id in cluster.workers) cluster.workers[id].kill("SIGTERM");
    httpServer.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
} else {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { cors: { origin: "*" } });
  io.adapter(createAdapter());
  setupWorker(io);
  const slot = Number(process.env.BENCH_SLOT);

  io.on("connection", (socket) => {
    socket.on("whoami", (_data, ack) => ack({ slot, pid: process.pid, sid: socket.id }));
    socket.on("echo", (data, ack) => ack(data));
    // Emit 'msg' to one client, wherever it is served.
    socket.on("send_to", (order, ack) => {
      io.to(order.to).emit("msg", order.data);
      ack(true);
    });
    // Emit 'news' to every client of every worker.
    socket.on("broadcast", (data, ack) => {
      io.emit("news", data);
      ack(true);
    });
  });
  process.send("bench:ready");
}
