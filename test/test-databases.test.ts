import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { doneWith, runDatabasePrefix } from "./support/db.ts";

/**
 * The test harness's own clean-up (test/support/db.ts): which of the databases the test files cloned
 * a run's end drops. A file that crashed never released its database, and a run that was interrupted
 * never reached its end: theirs were left behind for good.
 */
describe("test databases at a run's end", () => {
  it("drops the ending run's own, released ones and those of ended runs on this machine; not a running run's", () => {
    // The run that ends has process id 1 here (never a test run's); this file's process stands for a
    // run still going; a process that has exited, for a run killed before its end.
    const ending = runDatabasePrefix(1);
    const gone = spawnSync("true").pid;
    expect(gone).toBeGreaterThan(1);
    const open = (datname: string) => ({ datname, datallowconn: true });
    const released = (datname: string) => ({ datname, datallowconn: false });
    const rows = [
      open(`${ending}a1`),
      open(`${runDatabasePrefix()}b2`),
      released(`${runDatabasePrefix()}c3`),
      open(`${runDatabasePrefix(gone)}d4`),
      // Another machine's run on a shared server: its process cannot be checked from here.
      open(`videograph_test_zzzzzz_${gone}_e5`),
      // Names from before the machine and process were in them: dropped once released only.
      open("videograph_test_f6"),
      released("videograph_test_a7"),
    ];
    expect(doneWith(rows, ending)).toEqual([
      `${ending}a1`,
      `${runDatabasePrefix()}c3`,
      `${runDatabasePrefix(gone)}d4`,
      "videograph_test_a7",
    ]);
    // Whether a run has ended is asked of this machine's processes alone.
    const asked: number[] = [];
    doneWith(rows, ending, (pid) => {
      asked.push(pid);
      return false;
    });
    expect(asked).toEqual([process.pid, gone]);
  });
});
