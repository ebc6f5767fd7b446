import type { DocumentNode, FragmentDefinitionNode, GraphQLSchema, OperationDefinitionNode } from "graphql";
// graphql-js' own field collection (fragments, inline fragments, @skip/@include, merged response
// keys) and argument coercion, so the count is of the fields, and the arguments, execution will
// run with; internal API of the pinned graphql 16.
import { collectFields } from "graphql/execution/collectFields.js";
import { getArgumentValues, getVariableValues } from "graphql/execution/values.js";
import { mutationWeight, queryWeight, workOf } from "../jobs/mutation-work.ts";

/** The operation a request executes: the one named, or the only one. */
export function executedOperation(
  document: DocumentNode,
  operationName: string | null | undefined,
): OperationDefinitionNode | undefined {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === "OperationDefinition");
  return operationName
    ? operations.find((d) => d.name?.value === operationName)
    : operations.length === 1
      ? operations[0]
      : undefined;
}

/**
 * The summed weight of the root fields an operation will execute: a mutation's each by what it
 * declares (`mutationWork`), a query's by what it declares for its arguments (`queryWork`: a title
 * search); a subscription costs nothing here. Every alias counts, fields behind fragments count,
 * fields dropped by @skip/@include do not.
 */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): number {
  if (operation.operation === "subscription") return 0;
  const mutation = operation.operation === "mutation";
  const rootType = mutation ? schema.getMutationType() : schema.getQueryType();
  if (!rootType) return 0;
  // A query's weights read its arguments as execution coerces them; variables that do not coerce run nothing.
  let argumentVariables: Record<string, unknown> = {};
  if (!mutation) {
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {});
    if (coerced.errors) return 0;
    argumentVariables = coerced.coerced;
  }
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const d of document.definitions) if (d.kind === "FragmentDefinition") fragments[d.name.value] = d;
  let cost = 0;
  for (const nodes of collectFields(schema, fragments, variables ?? {}, rootType, operation.selectionSet).values()) {
    const name = nodes[0]!.name.value;
    const field = rootType.getFields()[name];
    if (!field) continue; // __typename, __schema, __type
    // Declared beside each mutation (extensions: mutationWork), weighted by the jobs it queues.
    if (mutation) cost += mutationWeight(workOf(field));
    else cost += queryWeight(field, getArgumentValues(field, nodes[0]!, argumentVariables));
  }
  return cost;
}
