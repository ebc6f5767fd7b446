import { readFile } from "node:fs/promises";
import path from "node:path";
import type { GraphiQLOptions, Plugin } from "graphql-yoga";
import { CONSOLE_DIST } from "./console.ts";
import { compressBoth, type ContentEncoding, preferredEncoding } from "./content-encoding.ts";

const DEFAULT_QUERY = `# The tenant's newest videos. Sign in to the console (/) first, in this tab, and the key is in
# the headers below; else add {"authorization": "Bearer vg_…"}. The schema is in the Docs pane.
query NewestVideos {
  videos(first: 5) {
    edges { node { id title status playable duration playbackUrl } }
  }
}
`;

/**
 * What the console's build (console/build.ts) wrote for GraphiQL (console/graphiql/main.ts) into
 * the console's static files: each a hashed file name, served like the console's (immutable,
 * precompressed).
 */
export interface GraphiQLAssets {
  css: string[];
  script: string;
}

/**
 * Where the build writes the asset names, beside the console's index.html: the last file a build
 * writes, so its presence means the build is whole (test/support/console.ts waits for it).
 */
export const GRAPHIQL_MANIFEST = path.join(CONSOLE_DIST, "graphiql.json");

/** Text for an HTML attribute value in double quotes. */
function attribute(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll('"', "&quot;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

let assetsRead: Promise<GraphiQLAssets | null> | null = null;

/** The build's GraphiQL files (read once), or null without a console build. */
function graphiqlAssets(): Promise<GraphiQLAssets | null> {
  assetsRead ??= readFile(GRAPHIQL_MANIFEST, "utf8")
    .then((text) => JSON.parse(text) as GraphiQLAssets)
    .catch(() => null);
  return assetsRead;
}

/**
 * GraphiQL from the npm package, built with the console (no CDN, so it works offline): a small page
 * that loads the build's hashed files and hands them yoga's options (the endpoint, the title, the
 * default query). Without a console build, a page that says how to make one.
 */
export async function renderOfflineGraphiQL(options?: GraphiQLOptions): Promise<string> {
  const assets = await graphiqlAssets();
  const settings = { defaultQuery: DEFAULT_QUERY, ...options };
  const title = settings.title || "GraphiQL · videograph";
  const head = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${attribute(title)}</title>
<link rel="icon" href="/favicon.ico">
`;
  if (!assets)
    return `${head}</head>
<body><p>GraphiQL is built with the console: run <code>npm run build:console</code> (npm ci does it), then reload.</p></body>
</html>
`;
  return `${head}${assets.css.map((href) => `<link rel="stylesheet" href="${href}">`).join("\n")}
<script type="module" src="${assets.script}"></script>
</head>
<body>
<noscript>You need to enable JavaScript to run GraphiQL.</noscript>
<div id="root" data-options="${attribute(JSON.stringify(settings))}"></div>
</body>
</html>
`;
}

/**
 * Content-Security-Policy of the GraphiQL page: the console's policy (nothing from another origin,
 * no framing, no forms, requests only to this origin, no inline script), with inline styles, which
 * GraphiQL's editor sets as it runs.
 */
const GRAPHIQL_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Each page, compressed once, keyed by its HTML. */
const encodedPages = new Map<string, Promise<Record<ContentEncoding, Buffer>>>();

function encodedPage(html: string): Promise<Record<ContentEncoding, Buffer>> {
  let encoded = encodedPages.get(html);
  if (!encoded) {
    if (encodedPages.size >= 8) encodedPages.clear();
    encoded = compressBoth(Buffer.from(html), "runtime");
    encodedPages.set(html, encoded);
  }
  return encoded;
}

/**
 * Sends GraphiQL's page (yoga's only HTML answer on /graphql) with its security headers, compressed
 * (brotli or gzip, made once per page) for a browser that takes it.
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
