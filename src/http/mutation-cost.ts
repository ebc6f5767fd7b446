import type { DocumentNode, FragmentDefinitionNode, GraphQLSchema, OperationDefinitionNode } from "graphql";
// graphql-js' own field collection (fragments, inline fragments, @skip/@include, merged response
// keys), so the count is of the fields execution will run; internal API of the pinned graphql 16.
import { collectFields } from "graphql/execution/collectFields.js";
import { mutationWeight, workOf } from "../jobs/mutation-work.ts";

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
 * The summed weight of the root fields a mutation operation will execute: every alias counts,
 * fields behind fragments count, fields dropped by @skip/@include do not.
 */
export function mutationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): number {
  const mutationType = schema.getMutationType();
  if (!mutationType) return 0;
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const d of document.definitions) if (d.kind === "FragmentDefinition") fragments[d.name.value] = d;
  let cost = 0;
  for (const nodes of collectFields(
    schema,
    fragments,
    variables ?? {},
    mutationType,
    operation.selectionSet,
  ).values()) {
    const field = nodes[0]!.name.value;
    if (field === "__typename") continue;
    // Declared beside each mutation (extensions: mutationWork), weighted by the jobs it queues.
    cost += mutationWeight(workOf(mutationType.getFields()[field]!));
  }
  return cost;
}
