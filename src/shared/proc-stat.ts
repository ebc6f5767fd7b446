/**
 * One line of `/proc/<pid>/stat`, as proc(5) lays it out. The command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so the fields after it are found from
 * the line's last `)`.
 */
export interface ProcStat {
  pid: number;
  /** The command name, without its parentheses. */
  comm: string;
  /** The state (field 3): `R`, `S`, `Z` (zombie), `X` (dead), … */
  state: string;
  /** Field `n` as proc(5) numbers it (1-based; 3 is the state, 4 the parent's pid); NaN when it is not a number. */
  field(n: number): number;
}

/** Clock ticks per second of /proc's CPU and start times (USER_HZ): 100 on every Linux architecture. */
export const CLOCK_TICKS_PER_SECOND = 100;

export function parseProcStat(line: string): ProcStat {
  const open = line.indexOf("(");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${line.slice(0, 80)}`);
  const rest = line
    .slice(close + 2)
    .trim()
    .split(" ");
  return {
    pid: Number(line.slice(0, open).trim()),
    comm: line.slice(open + 1, close),
    state: rest[0] ?? "",
    field: (n) => (n >= 3 ? Number(rest[n - 3]) : Number.NaN),
  };
}

/**
 * Whether a process with this id exists: signal 0 checks without sending anything (EPERM: it exists,
 * another user's). An id may be reused once its process has gone. An id that is not a positive
 * integer names no process (0 and negative ids name process groups, which signal 0 would find).
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
