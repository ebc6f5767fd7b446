const CHECK_TIMEOUT_MS = 3000;

/**
 * Runs one readiness check of either program; resolves null when it passed, else why not (a
 * string the check returned, or its error's first line). A check that does not answer in time fails.
 */
export async function runCheck(check: () => Promise<unknown>, timeoutMs = CHECK_TIMEOUT_MS): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const failure = await Promise.race([check(), timeout]);
    return typeof failure === "string" ? failure : null;
  } catch (err) {
    return (err as Error).message.split("\n")[0] || "failed";
  } finally {
    clearTimeout(timer);
  }
}
