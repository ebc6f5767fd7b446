import { CheckboxSet } from "../checkbox-set.tsx";
import { useEffect, useState } from "preact/hooks";
import { formatDate, statusLabel } from "../format.ts";
import { type ResultOf, request, runAndReload, type VariablesOf, useLatestReload } from "../graphql.ts";
import {
  CreateWebhookEndpointMutation,
  DeleteWebhookEndpointMutation,
  ResendWebhookDeliveryMutation,
  WebhookDeliveryQuery,
  WebhooksQuery,
} from "../operations.ts";
import { useTitle } from "../router.tsx";
import { ActionsCell, ActionsHeader, Table } from "../table.tsx";

type Endpoint = ResultOf<typeof WebhooksQuery>["webhookEndpoints"][number];
type Delivery = Endpoint["deliveries"]["edges"][number]["node"];
type DeliveryDetail = NonNullable<ResultOf<typeof WebhookDeliveryQuery>["webhookDelivery"]>;
type EventType = NonNullable<VariablesOf<typeof CreateWebhookEndpointMutation>["input"]["events"]>[number];

const EVENT_TYPES: [EventType, string][] = [
  ["VIDEO_PLAYABLE", "video.playable"],
  ["VIDEO_READY", "video.ready"],
  ["VIDEO_FAILED", "video.failed"],
  ["VARIANT_READY", "variant.ready"],
  ["JOB_FAILED", "job.failed"],
  ["LIVE_STREAM_CONNECTED", "live_stream.connected"],
  ["LIVE_STREAM_LIVE", "live_stream.live"],
  ["LIVE_STREAM_DISCONNECTED", "live_stream.disconnected"],
  ["LIVE_STREAM_ENDED", "live_stream.ended"],
];

/** The tenant's webhook endpoints with their latest deliveries; resend one, add or remove an endpoint. */
export function WebhooksPage() {
  useTitle("Webhooks");
  const [endpoints, setEndpoints] = useState<Endpoint[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState<EventType[]>([]);
  // Deliveries whose body and attempts are shown; they stay open while the table is read again.
  const [opened, setOpened] = useState<ReadonlySet<string>>(new Set());
  const toggle = (id: string) => {
    const next = new Set(opened);
    if (!next.delete(id)) next.add(id);
    setOpened(next);
  };
  const load = useLatestReload(
    () => request(WebhooksQuery, {}),
    (data) => setEndpoints(data.webhookEndpoints),
    (err) => setMessage(err.message),
  );
  useEffect(() => {
    void load();
  }, []);
  // Deliveries change after the actions that cause them (an event, a resend, a retry): while one is
  // due within a minute the table follows it every 2 s, otherwise it looks for new ones every 15 s.
  const dueSoon =
    endpoints?.some((endpoint) =>
      endpoint.deliveries.edges.some(
        ({ node }) =>
          node.status === "PENDING" && (!node.nextAttemptAt || Date.parse(node.nextAttemptAt) - Date.now() < 60_000),
      ),
    ) ?? false;
  useEffect(() => {
    const timer = setInterval(() => void load(), dueSoon ? 2000 : 15_000);
    return () => clearInterval(timer);
  }, [dueSoon]);
  const run = (work: () => Promise<{ __typename: string; message?: string }>) => runAndReload(work, setMessage, load);

  return (
    <section aria-labelledby="webhooks-title">
      <h1 id="webhooks-title">Webhooks</h1>
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          void run(async () => {
            const input = { url, ...(events.length > 0 && { events }) };
            const result = (await request(CreateWebhookEndpointMutation, { input })).createWebhookEndpoint;
            if (result.__typename === "CreateWebhookEndpointSuccess") setSecret(result.secret);
            return result;
          });
        }}
      >
        <label for="webhook-url">Endpoint URL</label>
        <input
          id="webhook-url"
          type="url"
          required
          value={url}
          onInput={(e) => setUrl((e.target as HTMLInputElement).value)}
        />
        <CheckboxSet
          legend="Events (none checked: every event)"
          options={EVENT_TYPES}
          value={events}
          onChange={setEvents}
        />
        <button type="submit">Add endpoint</button>
      </form>
      {secret && (
        <p class="warning">
          Signing secret, shown once: <code>{secret}</code>
        </p>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
      {endpoints?.length === 0 && <p>No endpoints.</p>}
      {endpoints?.map((endpoint) => (
        <article key={endpoint.id} class="card" aria-label={`Endpoint ${endpoint.url}`}>
          <h2>{endpoint.url}</h2>
          <p class="muted">
            {endpoint.events.length ? endpoint.events.join(", ").toLowerCase() : "every event"} ·{" "}
            {endpoint.enabled ? "enabled" : "disabled"} · since {formatDate(endpoint.createdAt)}
          </p>
          <button
            type="button"
            class="danger"
            onClick={() =>
              run(async () => (await request(DeleteWebhookEndpointMutation, { id: endpoint.id })).deleteWebhookEndpoint)
            }
          >
            Delete endpoint
          </button>
          <Table>
            <caption>Latest deliveries</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last answer</th>
                <th scope="col">Created</th>
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {endpoint.deliveries.edges.map(({ node: d }) => [
                <tr key={d.id}>
                  <td>
                    <button
                      type="button"
                      class="link"
                      aria-expanded={opened.has(d.id)}
                      aria-controls={`delivery-${d.id}`}
                      aria-label={`${deliveryName(d)}: body and attempts`}
                      onClick={() => toggle(d.id)}
                    >
                      {d.eventType.toLowerCase()}
                    </button>
                  </td>
                  <td>{statusLabel(d.status)}</td>
                  <td>{d.attemptCount}</td>
                  <td>{d.lastStatusCode ?? d.lastError ?? "–"}</td>
                  <td>{formatDate(d.createdAt)}</td>
                  <ActionsCell>
                    <button
                      type="button"
                      onClick={() =>
                        run(
                          async () =>
                            (await request(ResendWebhookDeliveryMutation, { id: d.id })).resendWebhookDelivery,
                        )
                      }
                    >
                      Resend
                    </button>
                  </ActionsCell>
                </tr>,
                opened.has(d.id) && (
                  <tr key={`${d.id}-detail`} id={`delivery-${d.id}`} class="delivery-detail">
                    <td colSpan={6}>
                      <DeliveryDetails delivery={d} />
                    </td>
                  </tr>
                ),
              ])}
            </tbody>
          </Table>
        </article>
      ))}
    </section>
  );
}

/** A delivery as a screen reader names it: its event type and when it was made. */
const deliveryName = (d: Delivery) => `${d.eventType.toLowerCase()} delivery of ${formatDate(d.createdAt)}`;

/** The JSON as sent, indented; a body that is not JSON as it is. */
function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/**
 * A delivery's body (text in a <pre>: a tenant's event data is never parsed as HTML) and every
 * attempt to send it, read again when another attempt is made.
 */
function DeliveryDetails({ delivery }: { delivery: Delivery }) {
  const [detail, setDetail] = useState<DeliveryDetail | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  useEffect(() => {
    request(WebhookDeliveryQuery, { id: delivery.id })
      .then((data) => (data.webhookDelivery ? setDetail(data.webhookDelivery) : setMessage("No such delivery.")))
      .catch((err: Error) => setMessage(err.message));
  }, [delivery.id, delivery.attemptCount, delivery.status]);
  if (!detail) return <p class="muted">{message ?? "Loading…"}</p>;
  return (
    <div class="delivery" data-testid="delivery-detail">
      <p class="muted">Event id {detail.eventId}</p>
      <h3>Body</h3>
      <pre data-testid="delivery-payload">{prettyJson(detail.payload)}</pre>
      <h3>Attempts</h3>
      {detail.attempts.length === 0 ? (
        <p class="muted">Not sent yet.</p>
      ) : (
        <ol aria-label="Attempts">
          {detail.attempts.map((a) => (
            <li key={a.id} data-testid="delivery-attempt">
              {formatDate(a.at)} · {a.statusCode != null ? `HTTP ${a.statusCode}` : "no answer"} · {a.durationMs} ms
              {a.error && <span class="error"> · {a.error}</span>}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
