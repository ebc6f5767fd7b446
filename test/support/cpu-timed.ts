import vm from "node:vm";

/** Wall time after which a synchronous parse is cut off: far past any linear one, however busy the machine. */
const CUT_OFF_MS = 10_000;

/**
 * Runs `work` with the CPU time it took (the thread's, not wall time, so a busy machine does not fail a
 * bound on it). vm's timeout interrupts a synchronous run (a regex included) after CUT_OFF_MS by
 * throwing, so a slow parse fails its test instead of blocking the run for minutes.
 */
export function cpuTimed<T>(work: () => T): { cpuMs: number; result: T } {
  const before = process.threadCpuUsage();
  const result = vm.runInNewContext("work()", { work }, { timeout: CUT_OFF_MS }) as T;
  const used = process.threadCpuUsage(before);
  return { cpuMs: (used.user + used.system) / 1000, result };
}
