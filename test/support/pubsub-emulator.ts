import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../src/free-port.ts";
import { startLocalServer } from "./local-server.ts";

const execFileAsync = promisify(execFile);

const BUNDLED_SDK_ROOT = "/usr/lib/google-cloud-sdk";
const JAR_PATTERN = /^cloud-pubsub-emulator-.*\.jar$/;
const START_TIMEOUT_MS = 30_000;

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
    const jar = (await readdir(dir))
      .filter((name) => JAR_PATTERN.test(name))
      .sort()
      .at(-1);
    return jar ? path.join(dir, jar) : null;
  } catch {
    return null;
  }
}

async function findEmulatorJar(): Promise<string | null> {
  const bundled = await findJarIn(BUNDLED_SDK_ROOT);
  if (bundled) return bundled;
  try {
    const { stdout } = await execFileAsync("gcloud", ["info", "--format=value(installation.sdk_root)"], {
      timeout: 20_000,
    });
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
      jar
        ? ""
        : `no cloud-pubsub-emulator-*.jar under ${BUNDLED_SDK_ROOT} or gcloud's SDK root (gcloud components install ` +
          `pubsub-emulator)`,
      java ? "" : "no `java` on PATH (the emulator needs Java 17+)",
    ]
      .filter(Boolean)
      .join("; ");
    return null;
  }
  const port = await freePort();
  const { stop } = await startLocalServer({
    name: `Pub/Sub emulator on port ${port}`,
    command: "java",
    args: ["-jar", jar, "--host=127.0.0.1", `--port=${port}`],
    ready: () => acceptsConnections(port),
    startTimeoutMs: START_TIMEOUT_MS,
    pollMs: 200,
    ownProcessGroup: true,
  });
  return { host: `127.0.0.1:${port}`, stop };
}
