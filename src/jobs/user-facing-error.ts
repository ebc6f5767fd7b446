/** An absolute path of two or more components, not part of a URL or a relative path. */
const ABSOLUTE_PATH = /(?<![\w.:/~-])(?:\/[^\s'"`/,;()<>[\]]+){2,}\/?/g;

/** A relative path that leads to a storage key (a data dir given as a relative DATA_DIR): its leading dirs. */
const RELATIVE_PREFIX_OF_KEY = /(?<![\w.:/~-])(?:[\w.-]+\/)+(?=(?:videos|tenants)\/)/g;

/** An IPv4 address, or a bracketed IPv6 one, with its port if any: a machine's, never the user's business. */
const NETWORK_ADDRESS = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\d)|\[[\da-fA-F:.]{2,45}\](?::\d{1,5})?/g;

/**
 * A file of a Postgres data dir, as its errors name them relative to it (`base/16384/17359`,
 * `pg_wal/…`): the database's layout, which says nothing to a user.
 */
const DATABASE_FILE = /(?<![\w.:/~-])(?:base|global|pg_wal|pg_xact|pg_multixact|pg_tblspc|pg_stat_tmp)\/[\w./-]*/g;

/** Characters that end a URL in an error's text. */
const URL_END = new Set([" ", "\n", "\r", "\t", "'", '"', "`", ")", ">", "]", ","]);

/**
 * The text with each URL's query string (a signature, an expiry, a token) left out: from a `?`
 * that follows a `/` in the same word to the word's end. One pass, no regular expression.
 */
function withoutQueryStrings(text: string): string {
  let out = "";
  let pathInWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "?" && pathInWord) {
      let end = i + 1;
      while (end < text.length && !URL_END.has(text[end]!)) end++;
      out += "?…";
      i = end - 1;
      continue;
    }
    if (URL_END.has(c)) pathInWord = false;
    else if (c === "/") pathInWord = true;
    out += c;
  }
  return out;
}

/** What a path says to a user: its part inside a job's work dir or a storage key, else its file name. */
function shortenPath(absolute: string): string {
  const parts = absolute.split("/").filter(Boolean);
  const workDir = parts.findLastIndex((p) => p.startsWith("videograph-"));
  if (workDir >= 0) return parts.slice(workDir + 1).join("/") || ".";
  const storageKey = parts.lastIndexOf("videos");
  if (storageKey >= 0) return parts.slice(storageKey).join("/");
  return parts.at(-1)!;
}

/**
 * A worker's error as users see it (Job.error, Video.error, Variant.error, LiveStream.lastError,
 * webhooks): without the worker's temp dirs, data directories, a database's files and network addresses, which say
 * nothing to a user and map the machine, nor URLs' query strings (signatures, tokens).
 * The full text stays on the run (JobRun.error) for operators.
 */
export function userFacingError(text: string): string {
  return withoutQueryStrings(text)
    .replace(ABSOLUTE_PATH, shortenPath)
    .replace(RELATIVE_PREFIX_OF_KEY, "")
    .replace(DATABASE_FILE, "(a database file)")
    .replace(NETWORK_ADDRESS, "(an internal address)");
}
