import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { useCSRFPrevention } from "@graphql-yoga/plugin-csrf-prevention";
import { useDisableIntrospection } from "@graphql-yoga/plugin-disable-introspection";
import { GraphQLError, type DefinitionNode, type DocumentNode, type OperationDefinitionNode } from "graphql";
import type { Plugin } from "graphql-yoga";
import type pg from "pg";
import { RateLimiterPostgres, RateLimiterRes } from "rate-limiter-flexible";
import type { Env } from "../config.ts";
import type { Context } from "../context.ts";

/**
 * Limits on what one key can do: mutations per minute, counted in Postgres so that every API
 * instance shares the budget. The counter table is the library's own (created on first start).
 */
export async function createMutationRateLimiter(pool: pg.Pool, perMinute: number): Promise<RateLimiterPostgres> {
  return new Promise((resolve, reject) => {
    const limiter: RateLimiterPostgres = new RateLimiterPostgres(
      { storeClient: pool, storeType: "pool", tableName: "rate_limits", keyPrefix: "mutations", points: perMinute, duration: 60 },
      (err?: Error) => (err ? reject(err) : resolve(limiter)),
    );
  });
}

/** `limiter()` is null until the API has started (its table is made in start()). */
function useMutationRateLimit(limiter: () => RateLimiterPostgres | null, perMinute: number): Plugin<Context> {
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      const definitions = (args.document as DocumentNode).definitions;
      const operations = definitions.filter((d: DefinitionNode): d is OperationDefinitionNode => d.kind === "OperationDefinition");
      const operation = operations.find((d) => !args.operationName || d.name?.value === args.operationName);
      const principal = (args.contextValue as Context).auth;
      const counters = limiter();
      if (operation?.operation !== "mutation" || !principal || !counters) return;
      try {
        await counters.consume(`${principal.kind}:${principal.subject}`);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const retryAfter = Math.ceil(err.msBeforeNext / 1000);
        setResultAndStopExecution({
          errors: [
            new GraphQLError(`Rate limited: more than ${perMinute} mutations a minute for this credential; retry in ${retryAfter} s`, {
              extensions: { code: "RATE_LIMITED", retryAfterSeconds: retryAfter, http: { status: 429, headers: { "retry-after": String(retryAfter) } } },
            }),
          ],
        });
      }
    },
  };
}

/**
 * GraphQL hardening beyond masked errors and body limits: depth, cost, alias and token limits
 * (GraphQL Armor), no field suggestions, CSRF prevention for browsers (a simple request must
 * carry a custom header), introspection off in production unless asked for, and the rate limit.
 */
export function graphqlSecurityPlugins(env: Env, limiter: () => RateLimiterPostgres | null): Plugin<Context>[] {
  const armor = EnvelopArmorPlugin({
    maxDepth: { n: env.GRAPHQL_MAX_DEPTH, flattenFragments: true },
    costLimit: { maxCost: env.GRAPHQL_MAX_COST },
    maxAliases: { n: env.GRAPHQL_MAX_ALIASES },
    maxTokens: { n: env.GRAPHQL_MAX_TOKENS },
    maxDirectives: { n: 20 },
    blockFieldSuggestion: { enabled: true },
  });
  const introspection = env.GRAPHQL_INTROSPECTION ?? env.NODE_ENV !== "production";
  return [
    armor as Plugin<Context>,
    useCSRFPrevention({ requestHeaders: ["x-graphql-csrf", "authorization"] }) as Plugin<Context>,
    ...(introspection ? [] : [useDisableIntrospection() as Plugin<Context>]),
    useMutationRateLimit(limiter, env.RATE_LIMIT_MUTATIONS_PER_MINUTE),
  ];
}
