import { execFile, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runSandboxed, type SandboxLimits, type SandboxResult } from "../../render-worker/sandbox/bubblewrap.ts";

const run = promisify(execFile);
const UNPRIVILEGED_SCRIPT = path.resolve(import.meta.dirname, "sandbox-unprivileged.ts");
const SANDBOX_MODULE = path.resolve(import.meta.dirname, "../../render-worker/sandbox/bubblewrap.ts");

const LIMITS: SandboxLimits = {
  cpuSeconds: 10,
  wallMs: 20_000,
  memoryBytes: 512 * 1024 * 1024,
  processes: 64,
  outputBytes: 8 * 1024 * 1024,
  logBytes: 1024 * 1024,
};

let root: string;
let workDir: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "videograph-sandbox-"));
  workDir = path.join(root, "work");
  await mkdir(workDir);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function sandboxedPython(
  script: string,
  opts: { limits?: Partial<SandboxLimits>; onSpawn?: (info: { pid: number; uid: number }) => void } = {},
): Promise<SandboxResult> {
  return runSandboxed({
    command: ["python3", "-c", script],
    workDir,
    limits: { ...LIMITS, ...opts.limits },
    onSpawn: opts.onSpawn,
  });
}

/** The same script outside the sandbox: the positive control. */
async function unsandboxedPython(script: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run("python3", ["-c", script], { cwd: workDir, timeout: 20_000 });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.end("hello\n"));
    server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

/** Processes of `uid` on the machine, read from /proc. */
function processesOfUid(uid: number): number {
  let count = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      if (new RegExp(`^Uid:\\s+${uid}\\s`, "m").test(status)) count += 1;
    } catch {
      // Exited meanwhile.
    }
  }
  return count;
}

describe("the bubblewrap sandbox", () => {
  it("lets a well-behaved script write its output file into the work dir", async () => {
    const result = await sandboxedPython(`import os\nopen("out.txt", "w").write(os.getcwd())\nprint("done")`);
    expect(result).toMatchObject({ exitCode: 0, limit: null, signal: null });
    expect(result.stdout).toBe("done\n");
    expect(readFileSync(path.join(workDir, "out.txt"), "utf8")).toBe("/job");
  });

  it("has no network: a TCP server on the host's 127.0.0.1 and an external address are unreachable", async () => {
    const { server, port } = await listen();
    try {
      const script = (host: string, p: number) => `
import socket
try:
    s = socket.create_connection((${JSON.stringify(host)}, ${p}), timeout=3)
    print("connected", s.recv(16).decode().strip())
except OSError as e:
    print("failed", e.errno)
`;
      expect((await unsandboxedPython(script("127.0.0.1", port))).stdout).toBe("connected hello\n");
      const local = await sandboxedPython(script("127.0.0.1", port));
      expect(local.exitCode).toBe(0);
      expect(local.stdout).toMatch(/^failed \d+\n$/);

      const external = await sandboxedPython(script("1.1.1.1", 443));
      expect(external.stdout).toMatch(/^failed \d+\n$/);
      const names = await sandboxedPython(`
import socket
try:
    print("resolved", socket.gethostbyname("example.com"))
except OSError as e:
    print("failed", type(e).__name__)
`);
      expect(names.stdout).toMatch(/^failed /);
    } finally {
      server.close();
    }
  });

  it("hides the worker's credentials file and environment", async () => {
    const secretDir = await mkdtemp(path.join(tmpdir(), "videograph-secrets-"));
    const credentials = path.join(secretDir, "service-account.json");
    await writeFile(credentials, '{"private_key": "fake-secret"}', { mode: 0o600 });
    process.env.GOOGLE_APPLICATION_CREDENTIALS = credentials;
    process.env.VIDEOGRAPH_TEST_SECRET = "fake-secret-value";
    try {
      const script = `
import os
print(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"), os.environ.get("VIDEOGRAPH_TEST_SECRET"))
for p in [${JSON.stringify(credentials)}, "/etc/shadow"]:
    try:
        print("read", len(open(p).read()))
    except OSError as e:
        print("denied", e.errno)
`;
      const control = await unsandboxedPython(script);
      expect(control.stdout.split("\n").slice(0, 2)).toEqual([`${credentials} fake-secret-value`, "read 30"]);
      const result = await sandboxedPython(script);
      expect(result.stdout).toMatch(/^None None\ndenied 2\ndenied 13\n$/);
      expect(result.exitCode).toBe(0);
    } finally {
      delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
      delete process.env.VIDEOGRAPH_TEST_SECRET;
      await rm(secretDir, { recursive: true, force: true });
    }
  });

  it("cannot write outside the work dir", async () => {
    const outside = path.join(root, "outside.txt");
    // System paths the test can check but never writes itself: only the sandbox tries them.
    const systemPaths = ["/etc/videograph-sandbox-test", "/usr/videograph-sandbox-test", "/videograph-sandbox-test"];
    const writer = (paths: string[]) => `
for p in ${JSON.stringify(paths)}:
    try:
        open(p, "w").write("x")
        print("wrote")
    except OSError as e:
        print("denied", e.errno)
`;
    const result = await sandboxedPython(writer([outside, ...systemPaths]));
    expect(result.stdout.trim().split("\n")).toHaveLength(4);
    expect(result.stdout).not.toMatch(/wrote/);
    for (const p of [outside, ...systemPaths]) expect(existsSync(p), p).toBe(false);
    expect((await unsandboxedPython(writer([outside]))).stdout).toBe("wrote\n");
    expect(existsSync(outside)).toBe(true);
  });

  it("bounds a fork bomb by the process limit, and the wall limit ends it", async () => {
    const bomb = `
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
`;
    const peakOf = async (processes: number) => {
      let peak = 0;
      let watching = true;
      let uid: number | null = null;
      const watcher = (async () => {
        while (watching) {
          if (uid !== null) peak = Math.max(peak, processesOfUid(uid));
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      const result = await sandboxedPython(bomb, {
        limits: { processes, wallMs: 3000 },
        onSpawn: (info) => (uid = info.uid),
      });
      watching = false;
      await watcher;
      return { result, peak, left: processesOfUid(uid!) };
    };
    const small = await peakOf(16);
    expect(small.result.limit).toBe("wall");
    expect(small.peak).toBeGreaterThan(8);
    expect(small.peak).toBeLessThanOrEqual(16);
    expect(small.left).toBe(0);
    expect(small.result.processesPeak).toBeLessThanOrEqual(16);
    // The limit is what bounds it: a larger limit lets the bomb grow larger.
    const larger = await peakOf(40);
    expect(larger.peak).toBeGreaterThan(16);
    expect(larger.peak).toBeLessThanOrEqual(40);
  });

  it("kills an infinite loop at the CPU limit", async () => {
    const result = await sandboxedPython("while True: pass", { limits: { cpuSeconds: 1, wallMs: 30_000 } });
    expect(result.limit).toBe("cpu");
    expect(result.durationMs).toBeLessThan(15_000);
    // Two checks race to stop it: the process's own RLIMIT_CPU (SIGXCPU from the kernel), and the
    // supervisor's poll of the run's cgroup (SIGKILL), whose total also counts bwrap's own start and
    // so can pass the limit one poll before the loop does. Without a cgroup only the first exists.
    if (result.cgroup === null || result.signal !== "SIGKILL") expect(result.signal).toBe("SIGXCPU");
    else expect(result.cpuSeconds).toBeGreaterThan(1);
  });

  it("gives each process RLIMIT_CPU at the limit, and SIGKILL a second later", async () => {
    const result = await sandboxedPython("import resource; print(resource.getrlimit(resource.RLIMIT_CPU))", {
      limits: { cpuSeconds: 3, wallMs: 30_000 },
    });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim()).toBe("(3, 4)");
  });

  it("kills a sleep at the wall limit", async () => {
    const result = await runSandboxed({ command: ["sleep", "60"], workDir, limits: { ...LIMITS, wallMs: 1000 } });
    expect(result.limit).toBe("wall");
    expect(result.signal).toBe("SIGKILL");
    expect(result.durationMs).toBeLessThan(5000);
  });

  it("stops a file at the output limit", async () => {
    const writer = (bytes: number) => `
with open("big.bin", "wb") as f:
    for _ in range(${bytes / 65536}):
        f.write(b"x" * 65536)
print("written")
`;
    const limits = { outputBytes: 1024 * 1024 };
    const small = await sandboxedPython(writer(512 * 1024), { limits });
    expect(small).toMatchObject({ exitCode: 0, limit: null });
    const big = await sandboxedPython(writer(4 * 1024 * 1024), { limits });
    expect(big.exitCode).not.toBe(0);
    expect(big.stdout).toBe("");
    expect(big.limit).toBe("output");
    expect((await stat(path.join(workDir, "big.bin"))).size).toBeLessThanOrEqual(1024 * 1024);
  });

  it("makes allocations beyond the memory limit fail", async () => {
    const allocate = `
try:
    b = bytearray(400 * 1024 * 1024)
    print("allocated", len(b) // 1048576)
except MemoryError:
    print("MemoryError")
`;
    expect((await sandboxedPython(allocate, { limits: { memoryBytes: 256 * 1024 * 1024 } })).stdout).toBe(
      "MemoryError\n",
    );
    expect((await sandboxedPython(allocate, { limits: { memoryBytes: 1024 * 1024 * 1024 } })).stdout).toBe(
      "allocated 400\n",
    );
  });

  it("runs in a cgroup of its own on this machine (cgroup v1 here), removed afterwards", async () => {
    const result = await sandboxedPython(`print(open("/proc/self/cgroup").read())`);
    expect(result.cgroup).not.toBe(null);
    const memoryLine = result.stdout.split("\n").find((l) => /^\d+:memory:/.test(l) || /^0::/.test(l));
    // The cgroup namespace makes the run's cgroup the root of what it sees.
    expect(memoryLine).toMatch(/:\/$/);
    const leftovers = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .filter((l) => / - cgroup2? /.test(l))
      .map((l) => l.split(" ")[4] ?? "")
      .flatMap((mount) => readdirSync(mount, { recursive: true }).map(String))
      .filter((p) => p.includes(`videograph-run-${process.pid}-`));
    expect(leftovers).toEqual([]);
  });

  it("removes, at a worker's first run, the empty run cgroups a killed worker left", async () => {
    const ownMemoryCgroup = readFileSync("/proc/self/cgroup", "utf8").match(/^\d+:memory:(.*)$/m)?.[1];
    expect(ownMemoryCgroup, "this machine's cgroup v1 memory hierarchy").toBeDefined();
    const dead = spawnSync("true").pid!;
    const leftover = path.join("/sys/fs/cgroup/memory", ownMemoryCgroup!, `videograph-run-${dead}-0123456789ab`);
    const ofLiveWorker = path.join(
      "/sys/fs/cgroup/memory",
      ownMemoryCgroup!,
      `videograph-run-${process.pid}-0123456789ab`,
    );
    await mkdir(leftover);
    await mkdir(ofLiveWorker);
    try {
      const worker = `import { runSandboxed } from ${JSON.stringify(SANDBOX_MODULE)};
const r = await runSandboxed({ command: ["true"], workDir: ${JSON.stringify(workDir)}, \
limits: ${JSON.stringify(LIMITS)} });
console.log(r.cgroup);`;
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", worker], { timeout: 30_000 });
      expect(stdout).toBe("v1\n");
      expect(existsSync(leftover)).toBe(false);
      expect(existsSync(ofLiveWorker)).toBe(true);
    } finally {
      await rmdir(leftover).catch(() => {});
      await rmdir(ofLiveWorker);
    }
  });

  it(`holds the run as a whole to its memory limit: six children of 200 MiB each under a 256 MiB \
limit end the run`, async () => {
    const sixChildren = `
import os
children = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os.read(os.open("/dev/zero", os.O_RDONLY), 1)
        import time
        time.sleep(30)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print("all children done")
`;
    const limit = 256 * 1024 * 1024;
    const started = Date.now();
    const result = await sandboxedPython(sixChildren, { limits: { memoryBytes: limit, wallMs: 60_000 } });
    expect(result.limit).toBe("memory");
    expect(result.stdout).toBe("");
    expect(Date.now() - started).toBeLessThan(30_000);
    // What the kernel charged to the run, all processes together, never went past the limit.
    expect(result.memoryPeakBytes).toBeGreaterThan(200 * 1024 * 1024);
    expect(result.memoryPeakBytes).toBeLessThanOrEqual(limit);
  });

  it("counts a file in the sandbox's /tmp towards the memory limit", async () => {
    const fill = (mib: number) => `
with open("/tmp/fill", "wb") as f:
    for _ in range(${mib}):
        f.write(b"x" * 1048576)
print("written")
`;
    const limits = { memoryBytes: 128 * 1024 * 1024, outputBytes: 512 * 1024 * 1024, wallMs: 60_000 };
    expect(await sandboxedPython(fill(32), { limits })).toMatchObject({
      limit: null,
      exitCode: 0,
      stdout: "written\n",
    });
    const over = await sandboxedPython(fill(300), { limits });
    expect(over.limit).toBe("memory");
    expect(over.memoryPeakBytes).toBeLessThanOrEqual(128 * 1024 * 1024);
  });

  it(`holds the run's CPU time as a whole: four busy children stop at the run's CPU limit, not \
four times it`, async () => {
    const busy = `
import os
for _ in range(4):
    if os.fork() == 0:
        while True: pass
os.wait()
`;
    const result = await sandboxedPython(busy, { limits: { cpuSeconds: 2, wallMs: 60_000 } });
    expect(result.limit).toBe("cpu");
    // Per process, each child could have used 2 s: 8 s in all. The slack is one poll of the cgroup.
    expect(result.cpuSeconds).toBeGreaterThanOrEqual(2);
    expect(result.cpuSeconds).toBeLessThan(3);
  });

  it("caps the run at a CPU quota: two busy processes under a quota of half a core get half a core", async () => {
    const busy = `
import os, time
if os.fork() == 0:
    while True: pass
t = time.time()
while time.time() - t < 2: pass
`;
    const result = await sandboxedPython(busy, { limits: { cpus: 0.5, wallMs: 60_000 } });
    expect(result.limit).toBe(null);
    // Uncapped, the two would use about 4 s in the 2 s; the quota holds them to about 1 s. The lower
    // bound only says they ran: on a loaded machine (files side by side) they get less than the quota.
    expect(result.cpuSeconds).toBeGreaterThan(0.2);
    expect(result.cpuSeconds).toBeLessThan(1.4);
  });

  it("lets the program write its home dir and /tmp", async () => {
    const result = await sandboxedPython(`
import os
home = os.environ["HOME"]
for d in [home, "/tmp"]:
    p = os.path.join(d, ".probe")
    open(p, "w").write("x")
    print(d, open(p).read())
os.makedirs(os.path.join(home, ".cache", "manim"))
print(os.stat(home).st_uid == os.getuid() or oct(os.stat(home).st_mode & 0o777))
`);
    expect(result.stderrTail).toBe("");
    expect(result.stdout).toMatch(/^\/\S+ x\n\/tmp x\n/);
    expect(result.exitCode).toBe(0);
  });

  it("cannot create user namespaces; threads and subprocesses still work", async () => {
    const userns = await run("unshare", ["-U", "true"]).then(
      () => "created",
      () => "refused",
    );
    expect(userns).toBe("created");
    const result = await sandboxedPython(`
import subprocess, threading
r = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
print("unshare", r.returncode, r.stderr.strip())
r = subprocess.run(["unshare", "-U", "-r", "id", "-u"], capture_output=True, text=True)
print("unshare -r", r.returncode)
seen = []
t = threading.Thread(target=lambda: seen.append("thread ran"))
t.start(); t.join()
print(seen[0], subprocess.run(["true"]).returncode)
`);
    expect(result.stdout).toMatch(
      /^unshare 1 unshare: unshare failed: Operation not permitted\nunshare -r 1\nthread ran 0\n$/,
    );
  });

  it("kills a program that prints more than the log limit", async () => {
    const result = await sandboxedPython(`import sys\nwhile True: sys.stdout.write("x" * 4096)`, {
      limits: { logBytes: 256 * 1024 },
    });
    expect(result.limit).toBe("log");
    expect(result.stdout.length).toBeLessThanOrEqual(256 * 1024);
  });

  // The Manim image runs the worker as an ordinary user: bwrap then builds a user namespace
  // instead of switching to a uid of the sandbox's own.
  it.runIf(process.getuid?.() === 0)(
    "works the same from a worker that is not root (user namespace mode)",
    async () => {
      await chmod(root, 0o755);
      await chmod(workDir, 0o777);
      const { server, port } = await listen();
      const node = process.execPath;
      try {
        const limits = JSON.stringify({ ...LIMITS, processes: 16, wallMs: 3000 });
        const args = [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "--",
          node,
          UNPRIVILEGED_SCRIPT,
          workDir,
          String(port),
          limits,
        ];
        const { stdout, stderr } = await run("setpriv", args, {
          timeout: 60_000,
          env: { PATH: process.env.PATH, HOME: root },
        });
        const seen = JSON.parse(stdout.trim().split("\n").at(-1)!);
        expect(seen).toMatchObject({ uid: 65534, write: "65534", net: "failed", bombLimit: "wall", userns: "refused" });
        // This machine gives uid 65534 no cgroup to write: limits hold per process, and the worker says so.
        expect(seen.cgroup).toBe(null);
        expect(stderr).toMatch(
          /"severity":"ERROR".*no writable cgroup; memory and process limits hold per process only/,
        );
        expect(readFileSync(path.join(workDir, "out.txt"), "utf8")).toBe("ok");
        // In this mode the sandbox shares the worker's uid: the count also holds node and bwrap's
        // own processes, so the bound is the limit plus a few, not the thousands of an unlimited bomb.
        expect(seen.peak).toBeGreaterThan(8);
        expect(seen.peak).toBeLessThanOrEqual(16 + 6);
      } finally {
        server.close();
      }
    },
  );
});
