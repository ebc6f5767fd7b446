import SchemaBuilder from "@pothos/core";
import ErrorsPlugin from "@pothos/plugin-errors";
import PrismaPlugin from "@pothos/plugin-prisma";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { GraphQLError } from "graphql";
import type { Scope } from "./auth/scopes.ts";
import type { Context } from "./context.ts";
import type PrismaTypes from "./generated/pothos-types.ts";
import { getDatamodel } from "./generated/pothos-types.ts";

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  AuthScopes: { scope: Scope };
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    File: { Input: File; Output: never };
  };
}>({
  // Scope auth first, so no other plugin's wrapper runs before the check; the errors plugin
  // before the Prisma plugin (Pothos docs).
  plugins: [ScopeAuthPlugin, ErrorsPlugin, PrismaPlugin, RelayPlugin],
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({ scope: (scope: Scope) => ctx.auth?.scopes.has(scope) ?? false }),
    unauthorizedError: (_parent, ctx, info) =>
      ctx.auth
        ? new GraphQLError(`Forbidden: ${info.parentType.name}.${info.fieldName} needs a scope this credential lacks`, {
            extensions: { code: "FORBIDDEN", http: { status: 403 } },
          })
        : new GraphQLError("Unauthenticated: send `Authorization: Bearer <API key or JWT>`", {
            extensions: { code: "UNAUTHENTICATED", http: { status: 401 } },
          }),
  },
  defaultFieldNullability: false,
  prisma: {
    client: (ctx) => ctx.db,
    dmmf: getDatamodel(),
    exposeDescriptions: true,
    filterConnectionTotalCount: true,
    onUnusedQuery: process.env.NODE_ENV === "production" ? null : "warn",
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
  },
  errors: {
    directResult: true,
  },
});
