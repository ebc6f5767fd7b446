// The floor of `npm run bench:analytics`: an HTTP server in a process of its own that reads each
// request's body and answers 202 with a small JSON body, as the collection endpoint does, and does
// nothing else (no parsing, no token, no storage). Beacons sent here instead of to the API measure what
// the machine pays for their HTTP alone: the sender, the kernel's loopback and a receiver that does
// the least any collector must.
//   node bench/support/beacon-sink.ts   (forked by startBeaconSink, with an IPC channel)
import { fork } from "node:child_process";
import http from "node:http";

/** Starts the sink on a free port of 127.0.0.1; resolves with its URL and a way to stop it. */
export function startBeaconSink(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const child = fork(import.meta.filename, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the beacon sink exited (${code}) before listening`)));
    child.once("message", (port) =>
      resolve({
        url: `http://127.0.0.1:${port as number}`,
        pid: child.pid!,
        stop: () =>
          new Promise<void>((done) => {
            child.removeAllListeners("exit");
            child.once("exit", () => done());
            child.kill("SIGTERM");
          }),
      }),
    );
  });
}

if (process.send && import.meta.filename === process.argv[1]) {
  const answer = Buffer.from('{"counted":true}');
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(202, { "content-type": "application/json", "content-length": answer.length });
      res.end(answer);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => {
    const address = server.address();
    process.send!(typeof address === "object" && address ? address.port : 0);
  });
  process.on("SIGTERM", () => process.exit(0));
}
