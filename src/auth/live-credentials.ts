import type { ExecutionResult } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Context } from "../context.ts";
import { RESYNC } from "../events/postgres-event-target.ts";
import { log } from "../log.ts";
import { API_KEY_REVOKED_TOPIC } from "./api-keys.ts";
import { AuthenticationError, type Authenticate } from "./authenticate.ts";
import type { Principal } from "./scopes.ts";

/** graphql-ws' own "Forbidden" close code: the credential of a live connection stopped being good. */
const CREDENTIAL_LOST_CLOSE_CODE = 4403;

/**
 * Closes a WebSocket with 4403 and `Forbidden: <why>`, cut to the 123 bytes a close reason may
 * have: at connection_init for a missing or bad credential, later when it stops being good.
 */
export function closeForbidden(socket: { close(code: number, reason: string): void }, why: string): void {
  let reason = `Forbidden: ${why}`;
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
  socket.close(CREDENTIAL_LOST_CLOSE_CODE, reason);
}

/** Every live connection of one credential: it is re-checked once for all of them. */
interface Watch {
  subject: string | null;
  principal: Principal;
  onLost: Set<(reason: string) => void>;
  timer: NodeJS.Timeout;
  recheck(): Promise<void>;
}

/**
 * Keeps long-lived connections' credentials (graphql-ws, SSE) honest: each is authenticated again every
 * `intervalSeconds`, and at once when an API key is revoked (a NOTIFY) or the fan-out reconnected and may have
 * missed one. Connections sharing a credential share its re-check: one query per interval, not one per socket.
 */
export class LiveCredentials {
  readonly #authenticate: Authenticate;
  readonly #intervalMs: number;
  readonly #watches = new Map<string, Watch>();

  constructor(authenticate: Authenticate, intervalSeconds: number) {
    this.#authenticate = authenticate;
    this.#intervalMs = intervalSeconds * 1000;
  }

  /** Listens for revocations on the fan-out (every API instance gets them). */
  listen(fanOut: EventTarget): void {
    fanOut.addEventListener(API_KEY_REVOKED_TOPIC, (event) => {
      const detail = (event as CustomEvent).detail;
      for (const watch of this.#watches.values()) {
        if (detail === RESYNC || (detail as { keyId?: string })?.keyId === watch.subject) void watch.recheck();
      }
    });
  }

  /**
   * The principal of `authorization` while connections of it are watched and it has not expired:
   * a new connection of the same credential needs no lookup of its own (ten thousand front ends of
   * one key reconnecting cost one). It is watched with the others, so a revocation ends it with
   * them, at once on the NOTIFY, else within `intervalSeconds`.
   */
  watchedPrincipal(authorization: string): Principal | null {
    const principal = this.#watches.get(authorization)?.principal;
    if (!principal || (principal.expiresAt !== null && principal.expiresAt <= Date.now())) return null;
    return principal;
  }

  /**
   * Calls `onLost` once, with the reason, when `authorization` stops authenticating. Returns the
   * function that stops watching (call it when the connection ends).
   */
  watch(authorization: string, principal: Principal, onLost: (reason: string) => void): () => void {
    const watch = this.#watches.get(authorization) ?? this.#startWatching(authorization, principal);
    let done = false;
    const once = (reason: string) => {
      if (done) return;
      done = true;
      onLost(reason);
    };
    watch.onLost.add(once);
    return () => {
      done = true;
      watch.onLost.delete(once);
      if (watch.onLost.size === 0) this.#stopWatching(authorization, watch);
    };
  }

  #startWatching(authorization: string, principal: Principal): Watch {
    const watch: Watch = {
      subject: principal.kind === "apiKey" ? principal.subject : null,
      principal,
      onLost: new Set(),
      timer: setInterval(() => void watch.recheck(), this.#intervalMs).unref(),
      recheck: async () => {
        if (this.#watches.get(authorization) !== watch) return;
        let reason: string | null = null;
        try {
          if ((await this.#authenticate(authorization, { fresh: true })) === null) reason = "no credential";
        } catch (err) {
          if (!(err instanceof AuthenticationError))
            return log.warn("credential re-check failed; trying again later", { err });
          reason = err.reason;
        }
        if (reason === null || this.#watches.get(authorization) !== watch) return;
        this.#stopWatching(authorization, watch);
        for (const onLost of watch.onLost) onLost(reason);
      },
    };
    this.#watches.set(authorization, watch);
    return watch;
  }

  #stopWatching(authorization: string, watch: Watch): void {
    clearInterval(watch.timer);
    if (this.#watches.get(authorization) === watch) this.#watches.delete(authorization);
  }

  /** Watches a WebSocket's credential; closes it with CREDENTIAL_LOST_CLOSE_CODE when it fails. */
  watchSocket(
    authorization: string,
    principal: Principal,
    socket: { close(code: number, reason: string): void },
  ): () => void {
    return this.watch(authorization, principal, (reason) => closeForbidden(socket, reason));
  }

  /**
   * A yoga plugin that ends a subscription served over HTTP (SSE) with an UNAUTHENTICATED error
   * when its credential fails. WebSocket subscriptions are not touched: their connection is
   * watched as a whole and closed.
   */
  plugin(): Plugin<Context> {
    return {
      onSubscribe: ({ args }) => {
        const context = args.contextValue as Context & { request?: Request };
        const authorization = context.request?.headers.get("authorization");
        if (!authorization || !context.auth) return;
        const principal = context.auth;
        return {
          onSubscribeResult: ({ result, setResult }) => {
            if (!isAsyncIterable(result)) return;
            let lost!: (result: ExecutionResult) => void;
            const lostResult = new Promise<ExecutionResult>((resolve) => (lost = resolve));
            const stop = this.watch(authorization, principal, (reason) =>
              lost({ errors: [new AuthenticationError(reason)] }),
            );
            setResult(endWith(result, lostResult, stop));
          },
        };
      },
    };
  }
}

function isAsyncIterable<T>(value: unknown): value is AsyncIterable<T> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

/**
 * `source`, until `last` settles: then `last`'s value is the final item. `onEnd` runs once when the
 * stream ends either way. The source's return() is not awaited: a generator suspended at an
 * await would hold the final item back until its next event.
 */
function endWith<T>(source: AsyncIterable<T>, last: Promise<T>, onEnd: () => void): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const final = last.then((value) => ({ final: value }));
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
    void iterator.return?.()?.catch(() => {});
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (ended) return { done: true, value: undefined };
      const next = await Promise.race([iterator.next(), final]);
      if ("final" in next) {
        end();
        return { done: false, value: next.final };
      }
      if (next.done) end();
      return next;
    },
    async return() {
      end();
      return { done: true, value: undefined };
    },
    async throw(err: unknown) {
      end();
      throw err;
    },
  };
}
