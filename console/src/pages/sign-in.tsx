import { useState } from "preact/hooks";
import { request } from "../graphql.ts";
import { VideosQuery } from "../operations.ts";
import { useTitle } from "../router.tsx";
import { forgetCredential, saveCredential } from "../session.ts";

/** Signs in with an API key or a viewer JWT, checked by one query before it is kept. */
export function SignInPage(props: { onSignedIn: () => void }) {
  useTitle("Sign in");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="narrow">
      <h1>Sign in to videograph</h1>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          setBusy(true);
          setError(null);
          saveCredential(secret);
          try {
            await request(VideosQuery, { first: 1 });
            props.onSignedIn();
          } catch (err) {
            forgetCredential();
            setError((err as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="secret">API key or viewer JWT</label>
        <input
          id="secret"
          name="secret"
          type="password"
          autocomplete="off"
          required
          value={secret}
          onInput={(e) => setSecret((e.target as HTMLInputElement).value)}
          aria-describedby="secret-help"
        />
        <p id="secret-help" class="muted">
          <code>npm start</code> prints an admin key (<code>export VIDEOGRAPH_KEY=vg_…</code>) on its first start: paste
          the key or that whole line. More with <code>npm run apikey:create</code>. It is kept in this tab only
          (sessionStorage).
        </p>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
