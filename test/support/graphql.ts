import { initGraphQLTada, type ResultOf, type TadaDocumentNode, type VariablesOf } from "gql.tada";
import { print } from "graphql";
import { expect } from "vitest";
import type { introspection } from "../../console/src/graphql-env.d.ts";

/**
 * The tests' `graphql` tag: the console's (console/src/graphql.ts) over the same introspection, which
 * `npm run generate` writes from schema/schema.graphql, so a field the schema does not have is a type
 * error in a test too (docs/testing.md, "How tests send GraphQL").
 */
export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: { DateTime: string; File: File };
  // Tests read fragments' fields directly, as the console's pages do.
  disableMasking: true;
}>();
export type { ResultOf, VariablesOf };

/**
 * An operation a test sends: a `graphql` document, or a string — in a file not converted yet, and
 * where a test sends an invalid document on purpose (a string is answered as `any`).
 */
export type Operation = TadaDocumentNode<any, any> | string;
/**
 * Whether a result type holds `unknown` anywhere: gql.tada's type for a field the schema does not
 * have (gql.tada reports it as an error only in an editor).
 */
type HoldsUnknown<T> = unknown extends T
  ? true
  : T extends readonly (infer E)[]
    ? HoldsUnknown<E>
    : T extends object
      ? { [K in keyof T]-?: HoldsUnknown<T[K]> }[keyof T]
      : false;
/**
 * What a helper takes an operation `D` as (`D & Checked<D>`): a document that selects a field the
 * schema does not have does not compile, wherever it is sent.
 */
export type Checked<D extends Operation> = D extends string
  ? unknown
  : true extends HoldsUnknown<ResultOf<D>>
    ? { unknownField: "a field it selects is not in schema/schema.graphql" }
    : unknown;
/** What `data` holds for an operation: its result for a document, `any` for a string. */
export type DataOf<D extends Operation> = D extends string ? any : ResultOf<D>;
/** The variables an operation takes: checked for a document, anything for a string. */
export type VariablesFor<D extends Operation> = D extends string ? Record<string, unknown> : VariablesOf<D>;

/** One error of a GraphQL answer. */
interface GraphqlError {
  message: string;
  path?: (string | number)[];
  extensions?: Record<string, unknown>;
}

/**
 * A GraphQL answer. `data` is typed as present: a test that reads it where the API answered errors
 * fails on that read, as it should.
 */
export interface GraphqlAnswer<T> {
  data: T;
  errors?: GraphqlError[];
}

/** The text of an operation, as it goes over the wire. */
export function operationText<D extends Operation>(operation: D & Checked<D>): string {
  return typeof operation === "string" ? operation : print(operation);
}

/**
 * POSTs an operation to the API at `url` with fetch, like a CMS would, with `authorization` when one
 * is given (none: no header); the answer's body as it came.
 */
export async function postGraphql<D extends Operation>(
  url: string,
  operation: D & Checked<D>,
  variables: VariablesFor<D> | undefined,
  authorization?: string,
): Promise<GraphqlAnswer<DataOf<D>>> {
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ query: operationText<D>(operation), variables }),
  });
  return (await res.json()) as GraphqlAnswer<DataOf<D>>;
}

/**
 * Expects a union's answer to be the member `typename` and returns it as that member, so a test reads
 * that member's fields typed (where it read them before and would have failed on an undefined).
 */
export function expectTypename<T extends { __typename?: string }, N extends string>(
  value: T | null | undefined,
  typename: N,
): Extract<T, { __typename: N }> {
  expect(value?.__typename).toBe(typename);
  return value as Extract<T, { __typename: N }>;
}
