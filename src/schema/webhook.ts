import { builder } from "../builder.ts";
import { tenantOf } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { WebhookDelivery, WebhookEndpoint } from "../generated/prisma/client.ts";
import { WebhookDeliveryStatus } from "../generated/prisma/enums.ts";
import { isUuid } from "../ids.ts";
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from "../webhooks/events.ts";
import { createWebhookEndpoint, deleteWebhookEndpoint, resendWebhookDelivery } from "../webhooks/endpoints.ts";
import { mutationWork } from "../jobs/mutation-work.ts";
import { refuseMalformedIdCursors } from "./id-cursors.ts";

const enumName = (type: WebhookEventType) => type.replace(".", "_").toUpperCase();

const WebhookEventTypeEnum = builder.enumType("WebhookEventType", {
  values: Object.fromEntries(
    WEBHOOK_EVENT_TYPES.map((t) => [enumName(t), { value: t, description: `\`${t}\`` }]),
  ) as Record<string, { value: WebhookEventType }>,
});

const WebhookDeliveryStatusEnum = builder.enumType(WebhookDeliveryStatus, { name: "WebhookDeliveryStatus" });

builder.prismaObject("WebhookAttempt", {
  description: "One POST of a delivery and what the receiver answered.",
  fields: (t) => ({
    id: t.exposeID("id"),
    at: t.expose("at", { type: "DateTime" }),
    statusCode: t.exposeInt("statusCode", { nullable: true }),
    responseBody: t.exposeString("responseBody", {
      nullable: true,
      description: "The first 2 KiB of the response body.",
    }),
    error: t.exposeString("error", { nullable: true }),
    durationMs: t.exposeInt("durationMs"),
  }),
});

const WebhookDeliveryRef = builder.prismaObject("WebhookDelivery", {
  description:
    "One event for one endpoint, with every attempt to send it. `eventId` stays the same on retries and resends.",
  fields: (t) => ({
    id: t.exposeID("id"),
    eventId: t.exposeID("eventId", { description: "The `Webhook-Id` header and the body's `id`: dedupe on it." }),
    eventType: t.field({ type: WebhookEventTypeEnum, resolve: (d) => d.eventType as WebhookEventType }),
    status: t.expose("status", { type: WebhookDeliveryStatusEnum }),
    payload: t.string({ description: "The JSON body sent.", resolve: (d) => JSON.stringify(d.payload) }),
    attemptCount: t.exposeInt("attemptCount"),
    lastStatusCode: t.exposeInt("lastStatusCode", { nullable: true }),
    lastError: t.exposeString("lastError", { nullable: true }),
    nextAttemptAt: t.expose("nextAttemptAt", { type: "DateTime", nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deliveredAt: t.expose("deliveredAt", { type: "DateTime", nullable: true }),
    attempts: t.relation("attempts", { query: { orderBy: { at: "asc" } } }),
  }),
});

const WebhookEndpointRef = builder.prismaObject("WebhookEndpoint", {
  description: "Where a tenant's events are POSTed, signed with the endpoint's secret.",
  fields: (t) => ({
    id: t.exposeID("id"),
    url: t.exposeString("url"),
    events: t.field({
      type: [WebhookEventTypeEnum],
      description: "Event types sent here; empty means all.",
      resolve: (e) => e.events as WebhookEventType[],
    }),
    enabled: t.exposeBoolean("enabled"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deliveries: t.relatedConnection("deliveries", {
      cursor: "id",
      description: "Newest first.",
      query: (args) => {
        refuseMalformedIdCursors(args);
        return { orderBy: { createdAt: "desc" } };
      },
    }),
  }),
});

const CreateWebhookEndpointInput = builder.inputType("CreateWebhookEndpointInput", {
  fields: (t) => ({
    url: t.string({
      required: true,
      description: "https URL (http too where WEBHOOK_ALLOW_PRIVATE_URLS=true). Must resolve to a public address.",
    }),
    events: t.field({ type: [WebhookEventTypeEnum], description: "Default: every type." }),
  }),
});

const CreateWebhookEndpointSuccess = builder
  .objectRef<{ endpoint: WebhookEndpoint; secret: string }>("CreateWebhookEndpointSuccess")
  .implement({
    fields: (t) => ({
      endpoint: t.field({ type: WebhookEndpointRef, resolve: (r) => r.endpoint }),
      secret: t.exposeString("secret", { description: "The HMAC key of the `Signature` header. Shown once: keep it." }),
    }),
  });

const DeleteWebhookEndpointSuccess = builder
  .objectRef<{ deletedEndpointId: string }>("DeleteWebhookEndpointSuccess")
  .implement({
    fields: (t) => ({ deletedEndpointId: t.exposeID("deletedEndpointId") }),
  });

const ResendWebhookDeliverySuccess = builder
  .objectRef<{ delivery: WebhookDelivery }>("ResendWebhookDeliverySuccess")
  .implement({
    fields: (t) => ({ delivery: t.field({ type: WebhookDeliveryRef, resolve: (r) => r.delivery }) }),
  });

builder.queryFields((t) => ({
  webhookEndpoints: t.prismaField({
    type: [WebhookEndpointRef],
    description: "The caller's tenant's webhook endpoints.",
    authScopes: { scope: "webhooks:admin" },
    resolve: (query, _root, _args, ctx) =>
      ctx.db.webhookEndpoint.findMany({ ...query, where: { tenantId: tenantOf(ctx) }, orderBy: { createdAt: "asc" } }),
  }),
  webhookDelivery: t.prismaField({
    type: WebhookDeliveryRef,
    nullable: true,
    authScopes: { scope: "webhooks:admin" },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, { id }, ctx) =>
      isUuid(String(id))
        ? ctx.db.webhookDelivery.findFirst({
            ...query,
            where: { id: String(id), endpoint: { tenantId: tenantOf(ctx) } },
          })
        : null,
  }),
}));

builder.mutationFields((t) => ({
  createWebhookEndpoint: t.field({
    type: CreateWebhookEndpointSuccess,
    description: "Registers a URL for the tenant's events; the answer holds the signing secret, once.",
    authScopes: { scope: "webhooks:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { input: t.arg({ type: CreateWebhookEndpointInput, required: true }) },
    errors: { types: [ValidationError], union: { name: "CreateWebhookEndpointResult" } },
    resolve: (_root, { input }, ctx) => createWebhookEndpoint(ctx, tenantOf(ctx), input),
  }),
  deleteWebhookEndpoint: t.field({
    type: DeleteWebhookEndpointSuccess,
    authScopes: { scope: "webhooks:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "DeleteWebhookEndpointResult" } },
    resolve: async (_root, { id }, ctx) => ({
      deletedEndpointId: await deleteWebhookEndpoint(ctx.db, tenantOf(ctx), String(id)),
    }),
  }),
  resendWebhookDelivery: t.field({
    type: ResendWebhookDeliverySuccess,
    description: "Sends a delivery again now (same event id), whatever its status; retries start over for 24 h.",
    authScopes: { scope: "webhooks:admin" },
    extensions: mutationWork({ jobs: [] }),
    args: { id: t.arg.id({ required: true }) },
    errors: { types: [NotFoundError], union: { name: "ResendWebhookDeliveryResult" } },
    resolve: async (_root, { id }, ctx) => ({
      delivery: await resendWebhookDelivery(ctx, tenantOf(ctx), String(id)),
    }),
  }),
}));
