import { execFile, spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../src/free-port.ts";

const execFileAsync = promisify(execFile);

const BUNDLED_SDK_ROOT = "/usr/lib/google-cloud-sdk";
const JAR_PATTERN = /^cloud-pubsub-emulator-.*\.jar$/;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5000;

export interface PubSubEmulator {
  /** `host:port`, the value for `PUBSUB_EMULATOR_HOST`. */
  host: string;
  stop(): Promise<void>;
}

/** Why `startPubSubEmulator` returned null, for the caller's skip message. */
export let pubSubEmulatorUnavailableReason = "";

async function findJarIn(sdkRoot: string): Promise<string | null> {
  const dir = path.join(sdkRoot, "platform", "pubsub-emulator", "lib");
  try {
    const jar = (await readdir(dir)).filter((name) => JAR_PATTERN.test(name)).sort().at(-1);
    return jar ? path.join(dir, jar) : null;
  } catch {
    return null;
  }
}

async function findEmulatorJar(): Promise<string | null> {
  const bundled = await findJarIn(BUNDLED_SDK_ROOT);
  if (bundled) return bundled;
  try {
    const { stdout } = await execFileAsync("gcloud", ["info", "--format=value(installation.sdk_root)"], { timeout: 20_000 });
    return stdout.trim() ? await findJarIn(stdout.trim()) : null;
  } catch {
    return null;
  }
}

async function hasJava(): Promise<boolean> {
  try {
    await execFileAsync("java", ["-version"], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts the Pub/Sub emulator (the Google Cloud CLI component's jar, run with `java`) on a free
 * port and resolves once it accepts connections. Resolves null when the jar or Java is missing;
 * `pubSubEmulatorUnavailableReason` then says which, so callers can skip loudly.
 */
export async function startPubSubEmulator(): Promise<PubSubEmulator | null> {
  const [jar, java] = await Promise.all([findEmulatorJar(), hasJava()]);
  if (!jar || !java) {
    pubSubEmulatorUnavailableReason = [
      jar ? "" : `no cloud-pubsub-emulator-*.jar under ${BUNDLED_SDK_ROOT} or gcloud's SDK root (gcloud components install pubsub-emulator)`,
      java ? "" : "no `java` on PATH (the emulator needs Java 17+)",
    ]
      .filter(Boolean)
      .join("; ");
    return null;
  }
  const port = await freePort();
  // Its own process group, so stop() reaches any child the JVM starts.
  const child = spawn("java", ["-jar", jar, "--host=127.0.0.1", `--port=${port}`], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", keepTail);
  child.stderr.on("data", keepTail);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  // Should the test process end without calling stop(), the emulator must not outlive it.
  const killOnExit = () => killGroup("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    if (hasExited) return;
    killGroup("SIGTERM");
    const timer = setTimeout(() => killGroup("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await acceptsConnections(port))) {
    if (hasExited || Date.now() > deadline) {
      await stop();
      throw new Error(`Pub/Sub emulator did not start on port ${port} (${hasExited ? "it exited" : "timed out"}):\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { host: `127.0.0.1:${port}`, stop };
}
