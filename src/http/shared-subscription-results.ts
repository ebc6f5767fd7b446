import { createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult, execute } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Principal } from "../auth/scopes.ts";
import type { Context } from "../context.ts";

/**
 * Executes a subscription's selection once per event for every subscriber who asked the same
 * thing, and hands them all the same result, serialised once for SSE (`serializedOnce`; graphql-ws
 * does the same in graphql-ws.ts). Thousands of front ends following one video send the
 * same document and variables; without this, each event ran their resolver trees once each.
 *
 * An event is shared by object identity: the fan-out delivers one payload object to every local
 * listener of a topic, so subscribers get the same object exactly when they follow the same
 * thing. Results are keyed by what can change them — the document, operation, variables, and the
 * part of the context resolvers read (tenant, scopes, request origin; see `audienceOf`) — so a
 * result is never handed to a subscriber of another tenant or with other scopes. Each subscriber's
 * own source stream (authorization, its first event read from the database, ordering) is untouched.
 */
export function sharedSubscriptionResults(): Plugin<Context> {
  const documentIds = new WeakMap<DocumentNode, number>();
  let documentCount = 0;
  // Entries go when the event object does: nothing is kept once every subscriber moved on.
  const resultsByEvent = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();

  function sharingKey(args: ExecutionArgs): string {
    let documentId = documentIds.get(args.document);
    if (documentId === undefined) {
      documentId = documentCount++;
      documentIds.set(args.document, documentId);
    }
    const context = args.contextValue as Context;
    return JSON.stringify([
      documentId,
      args.operationName ?? null,
      args.variableValues ?? null,
      audienceOf(context.auth),
      context.requestOrigin ?? null,
    ]);
  }

  function resultFor(event: unknown, key: string, args: ExecutionArgs): Promise<ExecutionResult> | ExecutionResult {
    const run = () => execute({ ...args, rootValue: event });
    if (typeof event !== "object" || event === null) return run();
    let byKey = resultsByEvent.get(event);
    if (!byKey) {
      byKey = new Map();
      resultsByEvent.set(event, byKey);
    }
    let result = byKey.get(key);
    if (!result) {
      result = Promise.resolve(run()).then(serializedOnce);
      byKey.set(key, result);
    }
    return result;
  }

  return {
    onSubscribe: ({ setSubscribeFn }) => {
      setSubscribeFn(async (args) => {
        const stream = await createSourceEventStream(args as ExecutionArgs);
        if (!(Symbol.asyncIterator in stream)) return stream;
        const key = sharingKey(args as ExecutionArgs);
        return mapEvents(stream, (event) => resultFor(event, key, args as ExecutionArgs));
      });
    },
  };
}

/**
 * Gives a shared result the `stringify` yoga's SSE responses use when a result has one: the first
 * subscriber's call makes the JSON, the others get the same string. Yoga hands it the result as
 * it sends it (internal error extensions removed), which is the same for every subscriber of one
 * result. Not enumerable, so nothing that copies or serialises the result sees it.
 */
function serializedOnce(result: ExecutionResult): ExecutionResult {
  let json: string | undefined;
  Object.defineProperty(result, "stringify", {
    value: (sent: unknown) => {
      json ??= JSON.stringify(sent);
      return json;
    },
    enumerable: false,
  });
  return result;
}

/**
 * What of the principal a resolver may read: its tenant and scopes. A field that starts reading
 * more of the principal (its subject, say) must add it here, or its results would be shared.
 */
function audienceOf(principal: Principal | null): [string, string[]] | null {
  return principal && [principal.tenantId, [...principal.scopes].sort()];
}

/** Like graphql-js' own mapping: `return()` reaches the source at once, even while it waits for an event. */
function mapEvents<T, R>(
  source: AsyncIterable<T>,
  map: (value: T) => Promise<R> | R,
): AsyncIterableIterator<R> & AsyncGenerator<R> {
  const iterator = source[Symbol.asyncIterator]();
  const close = async (): Promise<IteratorResult<R>> => {
    await iterator.return?.();
    return { done: true, value: undefined };
  };
  const mapped: AsyncGenerator<R> = {
    async next() {
      const next = await iterator.next();
      if (next.done) return { done: true, value: undefined };
      try {
        return { done: false, value: await map(next.value) };
      } catch (err) {
        await close().catch(() => {});
        throw err;
      }
    },
    return: close,
    async throw(err: unknown) {
      await close();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return mapped;
    },
    async [Symbol.asyncDispose]() {
      await close();
    },
  };
  return mapped;
}
