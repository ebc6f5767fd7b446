import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { useCSRFPrevention } from "@graphql-yoga/plugin-csrf-prevention";
import { useDisableIntrospection } from "@graphql-yoga/plugin-disable-introspection";
import { PothosValidationError } from "@pothos/core";
import { type DocumentNode, GraphQLError, type ValidationContext } from "graphql";
import { maskError, type Plugin } from "graphql-yoga";
import type pg from "pg";
import { RateLimiterPostgres, RateLimiterRes } from "rate-limiter-flexible";
import type { Env } from "../config.ts";
import type { Context } from "../context.ts";
import { executedOperation, operationCost } from "./mutation-cost.ts";

/**
 * Limits on what one key can do: mutation cost per minute, counted in Postgres so that every API
 * instance shares the budget. The counter table is the library's own (created on first start).
 */
export async function createMutationRateLimiter(pool: pg.Pool, perMinute: number): Promise<RateLimiterPostgres> {
  return new Promise((resolve, reject) => {
    const limiter: RateLimiterPostgres = new RateLimiterPostgres(
      {
        storeClient: pool,
        storeType: "pool",
        tableName: "rate_limits",
        keyPrefix: "mutations",
        points: perMinute,
        duration: 60,
      },
      (err?: Error) => (err ? reject(err) : resolve(limiter)),
    );
  });
}

/**
 * Charges an operation's cost (each mutation's declared `mutationWork`, each query field's declared
 * `queryWork`: a title search) to its credential before it runs. A request whose cost does not fit
 * in what is left of the minute runs none of its fields and is charged nothing. `limiter()` is null
 * until the API has started (its table is made in start()).
 */
function useMutationRateLimit(limiter: () => RateLimiterPostgres | null, perMinute: number): Plugin<Context> {
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      const document = args.document as DocumentNode;
      const operation = executedOperation(document, args.operationName);
      const principal = (args.contextValue as Context).auth;
      const counters = limiter();
      if (!operation || !principal || !counters) return;
      const cost = operationCost(
        args.schema,
        document,
        operation,
        args.variableValues as Record<string, unknown> | undefined,
      );
      if (cost === 0) return;
      const key = `${principal.kind}:${principal.subject}`;
      let refused: string | null = null;
      let retryAfter = 60;
      if (cost > perMinute) {
        const allowed = `the ${perMinute} a minute allowed for this credential`;
        refused = `this request costs ${cost}, more than ${allowed}; split it`;
      } else {
        try {
          await counters.consume(key, cost);
        } catch (err) {
          if (!(err instanceof RateLimiterRes)) throw err;
          // The counter was raised by the refused request: give its points back.
          await counters.reward(key, cost);
          retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
          refused =
            `more than ${perMinute} rate points a minute (mutations and title searches) for this credential (this request ` +
            `costs ${cost}); retry in ${retryAfter} s`;
        }
      }
      if (refused === null) return;
      setResultAndStopExecution({
        errors: [
          new GraphQLError(`Rate limited: ${refused}`, {
            extensions: {
              code: "RATE_LIMITED",
              retryAfterSeconds: retryAfter,
              http: { status: 429, headers: { "retry-after": String(retryAfter) } },
            },
          }),
        ],
      });
    },
  };
}

const ARMOR_PREFIX = "Syntax Error: ";

/**
 * GraphQL Armor words every refusal "Syntax Error: …": each is reported as the limit it is ("Query
 * depth limit of 8 exceeded, found 9.", "Token limit of 2000 exceeded."). Validation rules report a
 * validation error; the token limit, checked while parsing (no validation context), is thrown.
 */
const asLimitError = {
  propagateOnRejection: false,
  onReject: [
    (ctx: ValidationContext | null, err: GraphQLError) => {
      const message = err.message.startsWith(ARMOR_PREFIX) ? err.message.slice(ARMOR_PREFIX.length) : err.message;
      if (!ctx) throw new GraphQLError(message);
      ctx.reportError(new GraphQLError(message));
    },
  ],
};

/**
 * GraphQL hardening beyond masked errors and body limits: depth, cost, alias and token limits
 * (GraphQL Armor), no field suggestions, CSRF prevention for browsers (a simple request must
 * carry a custom header), introspection off in production unless asked for, and the rate limit.
 */
export function graphqlSecurityPlugins(env: Env, limiter: () => RateLimiterPostgres | null): Plugin<Context>[] {
  const armor = EnvelopArmorPlugin({
    maxDepth: { n: env.GRAPHQL_MAX_DEPTH, flattenFragments: true, ...asLimitError },
    // A fragment costs what its fields would cost written in place: clients that share fields
    // through fragments (Relay, Apollo, the console) are charged as for the same query inline.
    costLimit: { maxCost: env.GRAPHQL_MAX_COST, flattenFragments: true, ...asLimitError },
    maxAliases: { n: env.GRAPHQL_MAX_ALIASES, ...asLimitError },
    maxTokens: { n: env.GRAPHQL_MAX_TOKENS, ...asLimitError },
    maxDirectives: { n: 20, ...asLimitError },
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

/** How Pothos words a page's arguments it refuses while reading them, before any resolver runs. */
const CONNECTION_ARGUMENT_ERRORS = ['Argument "', 'Arguments "'];
const CURSOR_ERRORS = ["Invalid cursor", "Cursor must be", "Invalid base64", "Expected compound cursor"];

/**
 * Yoga's masking (anything unexpected is "Unexpected error."), except for what Pothos refuses in a
 * connection's arguments: a GraphQLError without a code, passed through as it is, whose cursor
 * message echoes the client's cursor. Those are the client's input: they get `BAD_USER_INPUT`, and
 * a cursor that does not decode is named, not echoed. The error is changed in place, not replaced:
 * yoga logs every error that masking replaces, and these are no fault of the API's.
 */
export function maskApiError(error: unknown, message: string, isDev?: boolean): Error {
  if (error instanceof GraphQLError && error.originalError instanceof PothosValidationError) {
    const refused = error.originalError.message;
    const extensions = error.extensions as Record<string, unknown>;
    if (CURSOR_ERRORS.some((prefix) => refused.startsWith(prefix))) {
      error.message = "`after` or `before` is not a cursor of this list: use a cursor it returned";
      extensions.code = "BAD_USER_INPUT";
      return error;
    }
    if (CONNECTION_ARGUMENT_ERRORS.some((prefix) => refused.startsWith(prefix))) {
      extensions.code = "BAD_USER_INPUT";
      return error;
    }
  }
  return maskError(error, message, isDev);
}
