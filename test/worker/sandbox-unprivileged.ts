/**
 * Run by sandbox.test.ts as an ordinary user (setpriv), like a worker in the Manim image: the
 * sandbox then runs in user namespace mode. Prints what it saw as one JSON line.
 * argv: work dir, port of a TCP server on 127.0.0.1, limits as JSON.
 */
import { readdirSync, readFileSync } from "node:fs";
import { runSandboxed } from "../../render-worker/sandbox/bubblewrap.ts";

const [workDir = "", port = "", limitsJson = ""] = process.argv.slice(2);
const limits = JSON.parse(limitsJson);
const python = (code: string) => runSandboxed({ command: ["python3", "-c", code], workDir, limits });
const uid = process.getuid!();

function processesOfMyUid(): number {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return new RegExp(`^Uid:\\s+${uid}\\s`, "m").test(readFileSync(`/proc/${p}/status`, "utf8"));
      } catch {
        return false;
      }
    }).length;
}

const write = await python("import os\nopen('out.txt', 'w').write('ok')\nprint(os.getuid())");
const net = await python(
  `import socket\ntry:\n  socket.create_connection(('127.0.0.1', ${port}), timeout=3)\n  print('connected')\nexcept ` +
    `OSError:\n  print('failed')`,
);
const userns = await runSandboxed({
  command: ["sh", "-c", "unshare -U true && echo created || echo refused"],
  workDir,
  limits,
});
let peak = 0;
let watching = true;
const watcher = (async () => {
  while (watching) {
    peak = Math.max(peak, processesOfMyUid());
    await new Promise((r) => setTimeout(r, 25));
  }
})();
const bomb = await python(
  "import os, time\nwhile True:\n  try:\n    os.fork()\n  except OSError:\n    time.sleep(0.01)",
);
watching = false;
await watcher;
console.log(
  JSON.stringify({
    uid,
    write: write.stdout.trim(),
    net: net.stdout.trim(),
    bombLimit: bomb.limit,
    peak,
    cgroup: write.cgroup,
    userns: userns.stdout.trim(),
  }),
);
