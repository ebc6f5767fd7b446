import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import type { GraphiQLOptions, Plugin } from "graphql-yoga";
import { compressBoth, type ContentEncoding, preferredEncoding } from "./content-encoding.ts";

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
  const key = JSON.stringify(options ?? null);
  let page = renderedPages.get(key);
  if (page === undefined) {
    page = renderGraphiQL({ defaultQuery: DEFAULT_QUERY, ...options }).replace("<head>", `<head>${PRESET_HEADERS}`);
    renderedPages.set(key, page);
  }
  return page;
}

/** The page for each set of options (one in practice): rendered once, about 9 MB of HTML. */
const renderedPages = new Map<string, string>();
/** Each rendered page, compressed once (about 1.9 MB brotli, 2.4 MB gzip), keyed by its HTML. */
const encodedPages = new Map<string, Promise<Record<ContentEncoding, Buffer>>>();

function encodedPage(html: string): Promise<Record<ContentEncoding, Buffer>> {
  let encoded = encodedPages.get(html);
  if (!encoded) {
    encoded = compressBoth(Buffer.from(html), "runtime");
    encodedPages.set(html, encoded);
  }
  return encoded;
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

/**
 * Sends GraphiQL's page (yoga's only HTML answer on /graphql) with the console's security headers,
 * compressed (brotli or gzip, made once per page) for a browser that takes it.
 */
export function graphiqlPage(): Plugin {
  return {
    async onResponse({ request, response, setResponse }) {
      if (!response.headers.get("content-type")?.startsWith("text/html")) return;
      response.headers.set("content-security-policy", GRAPHIQL_CONTENT_SECURITY_POLICY);
      response.headers.set("x-content-type-options", "nosniff");
      response.headers.set("referrer-policy", "no-referrer");
      response.headers.set("vary", "accept-encoding");
      const encoding = response.status === 200 ? preferredEncoding(request.headers.get("accept-encoding")) : null;
      if (!encoding || !response.body) return;
      const body = (await encodedPage(await response.text()))[encoding];
      const headers = new Headers(response.headers);
      headers.set("content-encoding", encoding);
      headers.set("content-length", String(body.length));
      setResponse(new Response(new Uint8Array(body), { status: response.status, headers }));
    },
  };
}
