import { print } from "@0no-co/graphql.web";
import { initGraphQLTada, type TadaDocumentNode } from "gql.tada";
import { createClient } from "graphql-ws";
import { useRef } from "preact/hooks";
import type { introspection } from "./graphql-env.d.ts";
import { credential, forgetCredential } from "./session.ts";

/**
 * `graphql()` types every operation from the printed schema (schema/schema.graphql, through
 * graphql-env.d.ts, which `npm run generate` writes): a field that does not exist is a type error.
 */
export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: { DateTime: string; File: File };
  // Pages read fragments' fields directly.
  disableMasking: true;
}>();
export type { ResultOf, VariablesOf } from "gql.tada";

type Document<R, V> = TadaDocumentNode<R, V>;

/** A GraphQL error the API answered; `code` is its `extensions.code`. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

const signedOutListeners = new Set<() => void>();
/** Calls `listener` when the API refuses the credential. */
export function onSignedOut(listener: () => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

function refused(code: string | undefined): void {
  if (code !== "UNAUTHENTICATED") return;
  forgetCredential();
  for (const listener of signedOutListeners) listener();
}

/** Runs a query or mutation over HTTP with the signed-in credential. */
export async function request<R, V>(document: Document<R, V>, variables: V): Promise<R> {
  const authorization = credential();
  const res = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await res.json().catch(() => null)) as {
    data?: R;
    errors?: { message: string; extensions?: { code?: string } }[];
  } | null;
  const error = body?.errors?.[0];
  if (error) {
    refused(error.extensions?.code);
    throw new ApiError(error.message, error.extensions?.code);
  }
  if (!res.ok || !body?.data) throw new ApiError(`The API answered ${res.status}`);
  return body.data;
}

const socket = createClient({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
  // Read on every (re)connection, so a new sign-in is used.
  connectionParams: () => ({ authorization: credential() ?? "" }),
  lazy: true,
  retryAttempts: Number.POSITIVE_INFINITY,
  shouldRetry: () => true,
  // Capped: the default back-off doubles without end, so after an API restart a tab could wait
  // minutes to reconnect. Jitter spreads the reconnects of many tabs.
  retryWait: (retries) =>
    new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** retries, 10_000) + Math.random() * 1000)),
});

/** Follows a subscription over graphql-ws; returns the function that stops it. */
export function subscribe<R, V>(
  document: Document<R, V>,
  variables: V,
  handlers: { next: (data: R) => void; error?: (err: Error) => void; complete?: () => void },
): () => void {
  return socket.subscribe<R>(
    { query: print(document), variables: variables as Record<string, unknown> },
    {
      next: (message) => {
        const error = message.errors?.[0];
        if (error) handlers.error?.(new ApiError(error.message));
        else if (message.data) handlers.next(message.data as R);
      },
      error: (err) => handlers.error?.(err instanceof Error ? err : new Error("The subscription failed")),
      complete: () => handlers.complete?.(),
    },
  );
}

/** A mutation with one file, as a GraphQL multipart request (the file goes in `variables.file`). */
export async function requestWithFile<R, V extends { file: File }>(document: Document<R, V>, variables: V): Promise<R> {
  const form = new FormData();
  form.set("operations", JSON.stringify({ query: print(document), variables: { ...variables, file: null } }));
  form.set("map", JSON.stringify({ 0: ["variables.file"] }));
  form.set("0", variables.file);
  const authorization = credential();
  const res = await fetch("/graphql", {
    method: "POST",
    headers: authorization ? { authorization } : {},
    body: form,
  });
  const body = (await res.json().catch(() => null)) as { data?: R; errors?: { message: string }[] } | null;
  if (body?.errors?.[0]) throw new ApiError(body.errors[0].message);
  if (!body?.data) throw new ApiError(`The API answered ${res.status}`);
  return body.data;
}

/**
 * A page's reload whose answer is applied only while it is the latest one asked for: reloads after
 * two quick changes (a filter, a mutation) may answer in either order, and an earlier one's answer
 * must not overwrite a later one's. `apply` and `fail` run for the latest reload only.
 */
export function useLatestReload<T>(
  ask: () => Promise<T>,
  apply: (value: T) => void,
  fail: (err: Error) => void,
): () => Promise<void> {
  const latest = useRef(0);
  return () => {
    const mine = ++latest.current;
    return ask().then(
      (value) => {
        if (mine === latest.current) apply(value);
      },
      (err: Error) => {
        if (mine === latest.current) fail(err);
      },
    );
  };
}

/**
 * Runs a mutation of a page's list (a `…Result` union: an error member has a `message`), shows its
 * error or its refusal with `setMessage` (null first), then reloads the list.
 */
export async function runAndReload(
  work: () => Promise<{ __typename: string; message?: string }>,
  setMessage: (message: string | null) => void,
  reload: () => Promise<unknown>,
): Promise<void> {
  setMessage(null);
  try {
    const result = await work();
    if (result.message) setMessage(result.message);
  } catch (err) {
    setMessage((err as Error).message);
  }
  await reload();
}
