import { CheckboxSet } from "../checkbox-set.tsx";
import { useEffect, useState } from "preact/hooks";
import { formatDate } from "../format.ts";
import { type ResultOf, request, runAndReload, useLatestReload } from "../graphql.ts";
import { ApiKeysQuery, CreateApiKeyMutation, RevokeApiKeyMutation, RotateApiKeyMutation } from "../operations.ts";
import { useTitle } from "../router.tsx";
import { ActionsCell, ActionsHeader, Table } from "../table.tsx";

type Key = ResultOf<typeof ApiKeysQuery>["apiKeys"]["edges"][number]["node"];
type ScopeName = Key["scopes"][number];

const SCOPE_LABELS: Record<ScopeName, string> = {
  VIDEOS_READ: "videos:read",
  VIDEOS_WRITE: "videos:write",
  JOBS_ADMIN: "jobs:admin",
  WEBHOOKS_ADMIN: "webhooks:admin",
  KEYS_ADMIN: "keys:admin",
};
const SCOPE_NAMES = Object.keys(SCOPE_LABELS) as ScopeName[];

/** The tenant's API keys (needs keys:admin): make one (its secret shown once), rotate or revoke one. */
export function KeysPage() {
  useTitle("API keys");
  const [keys, setKeys] = useState<Key[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<ScopeName[]>(["VIDEOS_READ"]);
  const [days, setDays] = useState("");
  // A rotate and a revoke in a row reload twice: only the latest answer is shown.
  const load = useLatestReload(
    () => request(ApiKeysQuery, {}),
    (data) => setKeys(data.apiKeys.edges.map((e) => e.node)),
    (err) => setMessage(err.message),
  );
  useEffect(() => {
    void load();
  }, []);
  const run = (work: () => Promise<{ __typename: string; message?: string }>) => {
    setSecret(null);
    return runAndReload(work, setMessage, load);
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          void run(async () => {
            const input = { name, scopes, ...(days ? { expiresInDays: Number(days) } : {}) };
            const result = (await request(CreateApiKeyMutation, { input })).createApiKey;
            if (result.__typename === "CreateApiKeySuccess") setSecret({ name, value: result.secret });
            return result;
          });
        }}
      >
        <label for="key-name">Name</label>
        <input id="key-name" required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <CheckboxSet
          legend="Scopes (only those your own key has)"
          options={SCOPE_NAMES.map((scope) => [scope, SCOPE_LABELS[scope]] as const)}
          value={scopes}
          onChange={setScopes}
        />
        <label for="key-days">Expires after (days; empty: never)</label>
        <input
          id="key-days"
          type="number"
          min={1}
          max={3650}
          value={days}
          onInput={(e) => setDays(e.currentTarget.value)}
        />
        <button type="submit">Create key</button>
      </form>
      {secret && (
        <p class="warning" role="status">
          Key “{secret.name}”, shown once: <code>{secret.value}</code>
        </p>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
      {keys?.length === 0 && <p>No keys.</p>}
      {keys && keys.length > 0 && (
        <Table stacked>
          <caption>Keys of this tenant, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Scopes</th>
              <th scope="col">State</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <ActionsHeader />
            </tr>
          </thead>
          <tbody>
            {keys.map((key) => (
              <tr key={key.id}>
                <td data-label="Name" class="long">
                  {key.name}
                </td>
                <td data-label="Prefix">
                  <code>{key.prefix}…</code>
                </td>
                <td data-label="Scopes">{key.scopes.map((s) => SCOPE_LABELS[s]).join(", ")}</td>
                <td data-label="State">{key.state.toLowerCase()}</td>
                <td data-label="Last used">{key.lastUsedAt ? formatDate(key.lastUsedAt) : "never"}</td>
                <td data-label="Expires">{key.expiresAt ? formatDate(key.expiresAt) : "never"}</td>
                <ActionsCell>
                  {key.state === "ACTIVE" && (
                    <>
                      <button
                        type="button"
                        aria-label={`Rotate ${key.name}`}
                        onClick={() =>
                          run(async () => {
                            const result = (await request(RotateApiKeyMutation, { input: { id: key.id } }))
                              .rotateApiKey;
                            if (result.__typename === "RotateApiKeySuccess") {
                              setSecret({ name: key.name, value: result.secret });
                            }
                            return result;
                          })
                        }
                      >
                        Rotate
                      </button>{" "}
                      <button
                        type="button"
                        class="danger"
                        aria-label={`Revoke ${key.name}`}
                        onClick={() =>
                          run(async () => (await request(RevokeApiKeyMutation, { id: key.id })).revokeApiKey)
                        }
                      >
                        Revoke
                      </button>
                    </>
                  )}
                </ActionsCell>
              </tr>
            ))}
          </tbody>
        </Table>
      )}
    </section>
  );
}
