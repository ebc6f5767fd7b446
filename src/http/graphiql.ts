import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import type { GraphiQLOptions, Plugin } from "graphql-yoga";

/** The sessionStorage entry where the console keeps the signed-in credential (console/src/session.ts). */
const CONSOLE_CREDENTIAL_KEY = "videograph.authorization";

/*
 * Runs before GraphiQL's bundle: when the tab is signed in to the console (same origin, same tab,
 * so the same sessionStorage), GraphiQL starts with that credential in its headers editor.
 */
const PRESET_HEADERS = `<script>
(() => {
  const authorization = sessionStorage.getItem(${JSON.stringify(CONSOLE_CREDENTIAL_KEY)});
  if (!authorization) return;
  let bundle;
  Object.defineProperty(window, "YogaGraphiQL", {
    configurable: true,
    set(value) { bundle = value; },
    get() {
      return bundle && { ...bundle, renderYogaGraphiQL: (root, options) =>
        bundle.renderYogaGraphiQL(root, { ...options, headers: JSON.stringify({ authorization }) }) };
    },
  });
})();
</script>`;

const DEFAULT_QUERY = `# The tenant's newest videos. Sign in to the console (/) first, in this tab, and the key is in
# the headers below; else add {"authorization": "Bearer vg_…"}. The schema is in the Docs pane.
query NewestVideos {
  videos(first: 5) {
    edges { node { id title status playable duration playbackUrl } }
  }
}
`;

/**
 * GraphiQL from the npm package (no CDN, so it works offline), with the console's credential in
 * its headers.
 */
export function renderOfflineGraphiQL(options?: GraphiQLOptions): string {
  return renderGraphiQL({ defaultQuery: DEFAULT_QUERY, ...options }).replace("<head>", `<head>${PRESET_HEADERS}`);
}

/**
 * Content-Security-Policy of the GraphiQL page. GraphiQL's page is one HTML file of inline
 * scripts and styles (the npm package's bundle), so unlike the console it needs 'unsafe-inline';
 * the rest is the console's policy: nothing from another origin, no framing, no forms, and
 * requests only to this origin.
 */
const GRAPHIQL_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Sends GraphiQL's page (yoga's only HTML answer on /graphql) with the console's security headers. */
export function graphiqlSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      if (!response.headers.get("content-type")?.startsWith("text/html")) return;
      response.headers.set("content-security-policy", GRAPHIQL_CONTENT_SECURITY_POLICY);
      response.headers.set("x-content-type-options", "nosniff");
      response.headers.set("referrer-policy", "no-referrer");
    },
  };
}
