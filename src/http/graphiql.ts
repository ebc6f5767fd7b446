import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { GraphiQLOptions, Plugin } from "graphql-yoga";
import { CONSOLE_DIST } from "./console.ts";
import { compressBoth, type ContentEncoding, preferredEncoding } from "./content-encoding.ts";

/** The sessionStorage entry where the console keeps the signed-in credential (console/src/session.ts). */
const CONSOLE_CREDENTIAL_KEY = "videograph.authorization";

/*
 * Runs before GraphiQL's bundle: when the tab is signed in to the console (same origin, same tab,
 * so the same sessionStorage), GraphiQL starts with that credential in its headers editor.
 */
const PRESET_HEADERS = `(() => {
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
})();`;

const DEFAULT_QUERY = `# The tenant's newest videos. Sign in to the console (/) first, in this tab, and the key is in
# the headers below; else add {"authorization": "Bearer vg_…"}. The schema is in the Docs pane.
query NewestVideos {
  videos(first: 5) {
    edges { node { id title status playable duration playbackUrl } }
  }
}
`;

/**
 * GraphiQL puts the query editor and the response side by side, which leaves a 390 px phone a
 * 230 px editor and a 50 px response, and its logo over the tabs: on a narrow screen the response
 * goes under the editor, both the screen's width, and the logo goes.
 */
const PHONE_LAYOUT = `
@media (max-width: 640px) {
  .graphiql-container .graphiql-logo { display: none; }
  .graphiql-container .graphiql-sessions { margin: 8px 8px 8px 0; }
  .graphiql-container .graphiql-sessions > div:has(> .graphiql-editors) { flex-direction: column; }
  .graphiql-container .graphiql-editors { flex: 3 1 0% !important; min-height: 0; }
  .graphiql-container .graphiql-horizontal-drag-bar { display: none; }
  .graphiql-container .graphiql-response { flex: 2 1 0% !important; min-height: 0; min-width: 0; }
}
`;

/** What `writeGraphiQLAssets` wrote into the console's static files: each a hashed file name. */
export interface GraphiQLAssets {
  css: string;
  favicon: string;
  /** In page order: the boot script (credential, workers), the bundle, the start script. */
  scripts: [string, string, string];
}

/**
 * Where the build writes the asset names, beside the console's index.html: the last file a build
 * writes, so its presence means the build is whole (test/support/console.ts waits for it).
 */
export const GRAPHIQL_MANIFEST = path.join(CONSOLE_DIST, "graphiql.json");

/**
 * Writes GraphiQL (the `@graphql-yoga/render-graphiql` package's bundle, styles, Monaco's workers
 * and icon) into `staticDir` as hashed files, which the API serves like the console's (immutable,
 * precompressed), and returns their names. The page then is a few hundred bytes that
 * names them: the browser compiles the 5 MB bundle while it downloads, keeps the compiled code for
 * the next visit, and the page runs no inline script. Run by the console's build, which writes the
 * names it returns into GRAPHIQL_MANIFEST last.
 */
export async function writeGraphiQLAssets(staticDir: string): Promise<GraphiQLAssets> {
  const { css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker } = await import(
    "@graphql-yoga/render-graphiql/graphiql"
  );
  const write = async (stem: string, extension: string, body: string | Buffer) => {
    const name = `${stem}-${createHash("sha256").update(body).digest("hex").slice(0, 10)}${extension}`;
    await writeFile(path.join(staticDir, name), body);
    return `/static/${name}`;
  };
  const workers = {
    editorWorkerService: await write("graphiql-editor-worker", ".js", editorWorkerService),
    json: await write("graphiql-json-worker", ".js", jsonWorker),
    graphql: await write("graphiql-graphql-worker", ".js", graphqlWorker),
  };
  const boot = `${PRESET_HEADERS}
self.MonacoEnvironment = {
  globalAPI: false,
  getWorkerUrl: (moduleId, label) => (${JSON.stringify(workers)})[label],
};`;
  const start = `YogaGraphiQL.renderYogaGraphiQL(
  document.getElementById("root"),
  JSON.parse(document.getElementById("root").dataset.options),
);`;
  const icon = Buffer.from(favicon.slice(favicon.indexOf(",") + 1), "base64");
  const assets: GraphiQLAssets = {
    css: await write("graphiql", ".css", css + PHONE_LAYOUT),
    favicon: await write("graphiql-icon", ".ico", icon),
    scripts: [
      await write("graphiql-boot", ".js", boot),
      await write("graphiql", ".js", js),
      await write("graphiql-start", ".js", start),
    ],
  };
  return assets;
}

/** Text for an HTML attribute value in double quotes. */
function attribute(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll('"', "&quot;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

let assetsRead: Promise<GraphiQLAssets | null> | null = null;

/** The build's GraphiQL files (read once), or null without a console build: then the page is the package's, inline. */
function graphiqlAssets(): Promise<GraphiQLAssets | null> {
  assetsRead ??= readFile(GRAPHIQL_MANIFEST, "utf8")
    .then((text) => JSON.parse(text) as GraphiQLAssets)
    .catch(() => null);
  return assetsRead;
}

/**
 * GraphiQL from the npm package (no CDN, so it works offline), with the console's credential in
 * its headers: a small page that loads the build's hashed files; where the console was not built,
 * the package's own page with everything inline.
 */
export async function renderOfflineGraphiQL(options?: GraphiQLOptions): Promise<string> {
  const assets = await graphiqlAssets();
  const settings = { defaultQuery: DEFAULT_QUERY, ...options };
  if (!assets) {
    const { renderGraphiQL } = await import("@graphql-yoga/render-graphiql");
    return renderGraphiQL(settings).replace("<head>", `<head><script>${PRESET_HEADERS}</script>`);
  }
  const title = settings.title || "GraphiQL · videograph";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${attribute(title)}</title>
<link rel="icon" href="${assets.favicon}">
<link rel="stylesheet" href="${assets.css}">
</head>
<body id="body" class="no-focus-outline">
<noscript>You need to enable JavaScript to run GraphiQL.</noscript>
<div id="root" data-options="${attribute(JSON.stringify(settings))}"></div>
${assets.scripts.map((src) => `<script src="${src}"></script>`).join("\n")}
</body>
</html>
`;
}

/**
 * Content-Security-Policy of the GraphiQL page: the console's policy (nothing from another origin,
 * no framing, no forms, requests only to this origin), with inline styles, which GraphiQL's editor
 * sets as it runs. The page the package renders inline (no console build) needs inline scripts too.
 */
function graphiqlContentSecurityPolicy(inlinePage: boolean): string {
  return [
    "default-src 'none'",
    `script-src 'self'${inlinePage ? " 'unsafe-inline'" : ""}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** Each page, compressed once, keyed by its HTML (the inline page is about 9 MB: 1.9 MB brotli). */
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
      const inlinePage = (await graphiqlAssets()) === null;
      response.headers.set("content-security-policy", graphiqlContentSecurityPolicy(inlinePage));
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
