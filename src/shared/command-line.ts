/**
 * How every command-line program of the project (the API, the worker, scripts/, bench/) treats its
 * arguments; each keeps its own usage text. A program whose modules are heavy (the schema, a cloud
 * SDK, the bench's machinery) imports them with `await import()` after `parseCommandLine`, so that
 * `--help` and a mistyped flag answer at once: ES imports run before any line of the module.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Prints why the arguments are wrong and the usage on stderr, and exits 2 (a usage error). */
export function usageError(usage: string, message: string): never {
  process.stderr.write(`${message}\n\n${usage.trim()}\n`);
  process.exit(2);
}

/**
 * Parses a command line with node's util.parseArgs (strict: unknown options are errors). `-h` or
 * `--help` anywhere before `--` prints `usage` on stdout and exits 0 before anything else runs;
 * an unknown option or a malformed argument exits through usageError, not with a stack trace.
 * `args` defaults to the process's arguments.
 */
export function parseCommandLine<const T extends ParseArgsConfig>(
  usage: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  const end = args.indexOf("--");
  if ((end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h")) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ ...config, args } as T);
  } catch (err) {
    usageError(usage, (err as Error).message);
  }
}

/**
 * Returns what `load` (a program's environment parser) returns; when it throws, prints its message
 * (every invalid variable) on stderr, without a stack trace, and exits 2.
 */
export function loadConfigOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
}
