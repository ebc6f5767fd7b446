// A CMS's `video` queries beside the load of a benchmark, in a process of their own
// (`startQueryProber`): timed there, a query's latency is the API's and the network's, not the time
// its answer waited behind the load generator's own work in the benchmark's event loop.
//   node bench/support/query-prober.ts   (forked by startQueryProber, with an IPC channel)
import { fork } from "node:child_process";
import http from "node:http";
import { timedPost } from "./timed-post.ts";

const VIDEO_QUERY = `query ($id: ID!) { video(id: $id) { id title status playable createdAt } }`;
/** About 20 a second: a CMS's traffic beside the load, not a load of its own. */
const PAUSE_MS = 50;

interface ProbeRequest {
  url: string;
  ids: string[];
  authorization: string;
}

/**
 * Starts `video` queries one after another (a pause between them) against `url`, in a child process;
 * `stop()` resolves with their latencies in milliseconds, sorted (answers other than 200 left out).
 */
export function startQueryProber(request: ProbeRequest): { stop(): Promise<number[]> } {
  const child = fork(import.meta.filename, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  child.send(request);
  return {
    stop: () =>
      new Promise<number[]>((resolve, reject) => {
        child.once("message", (latencies) => resolve((latencies as number[]).sort((a, b) => a - b)));
        child.once("exit", (code) => reject(new Error(`the query prober exited (${code}) before answering`)));
        child.send("stop");
      }),
  };
}

function probe({ url, ids, authorization }: ProbeRequest): { stop(): Promise<number[]> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const base = new URL(url);
  const latencies: number[] = [];
  let running = true;
  const query = async (id: string) => {
    const body = JSON.stringify({ query: VIDEO_QUERY, variables: { id } });
    const r = await timedPost(agent, base, "/graphql", body, { "content-type": "application/json", authorization });
    if (r.status === 200) latencies.push(r.ms);
  };
  const done = (async () => {
    for (let i = 0; running; i++) {
      await query(ids[i % ids.length]!);
      await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      agent.destroy();
      return latencies;
    },
  };
}

if (process.send && import.meta.filename === process.argv[1]) {
  let running: ReturnType<typeof probe> | null = null;
  process.on("message", async (message: ProbeRequest | "stop") => {
    if (message !== "stop") {
      running = probe(message);
      return;
    }
    const latencies = (await running?.stop()) ?? [];
    process.send!(latencies, () => process.exit(0));
  });
}
