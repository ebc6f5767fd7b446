import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ENCODED_SUFFIX, isCompressible, preferredEncoding } from "./content-encoding.ts";

/** Where `npm run build:console` (console/build.ts) puts the built console. */
export const CONSOLE_DIST = fileURLToPath(new URL("../../console/dist/", import.meta.url));

/** Where Vite puts the console's hashed files (`build.assetsDir`, console/build.ts). */
const STATIC_PREFIX = "/static/";

/**
 * The icon browsers and feed readers ask for without reading the page (console/public/, copied
 * by Vite): its name has no hash, so it is cached for a day, not a year.
 */
const FAVICON = "/favicon.ico";

/**
 * The console's own pages, answered with its index.html (the client routes them). Anything else
 * falls through to the API's routes, so the console never shadows /graphql, /media, /health,
 * /uploads or a route added later.
 */
const PAGE =
  /^\/(?:|signin|upload|sources|live|webhooks|keys|videos(?:\/[A-Za-z0-9_-]{1,64})?|watch\/[A-Za-z0-9_-]{1,64})$/;

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

function notFound(res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end("Not found\n");
}

/** Content-Security-Policy of the console's pages: its own scripts and styles only, nothing inline. */
function consoleContentSecurityPolicy(options: { remoteMedia: boolean; embeddable: boolean }): string {
  // With GCS or S3 storage, posters, playlists and segments come from the bucket's signed https URLs.
  const media = options.remoteMedia ? " https:" : "";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src 'self' data: blob:${media}`,
    // hls.js feeds Media Source Extensions through blob: URLs and transmuxes in a blob: worker.
    `media-src 'self' blob:${media}`,
    `connect-src 'self'${media}`,
    "worker-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'none'",
    // Only the watch page may be framed (the embed snippet).
    `frame-ancestors ${options.embeddable ? "*" : "'none'"}`,
  ].join("; ");
}

export interface ConsoleOptions {
  /** The built console (console/dist). */
  distDir: string;
  /** Media is served from another origin (GCS or S3 storage). */
  remoteMedia: boolean;
}

/**
 * Serves the built console: hashed files under /static/ (cached for a year, immutable),
 * index.html for the console's pages (revalidated every time, with a strict CSP). Returns false
 * for every other request, which the caller routes on.
 */
export function createConsoleHandler(options: ConsoleOptions) {
  const indexFile = path.join(options.distDir, "index.html");
  const pageHeaders = (embeddable: boolean) => ({
    "content-type": CONTENT_TYPES[".html"]!,
    "cache-control": "no-cache",
    "content-security-policy": consoleContentSecurityPolicy({ remoteMedia: options.remoteMedia, embeddable }),
    "x-content-type-options": "nosniff",
    // A SIGNED video's watch URL carries its token: never send it on in a Referer.
    "referrer-policy": "no-referrer",
  });

  return async function handleConsole(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    if (url.pathname.startsWith(STATIC_PREFIX)) {
      await serveStatic(req, res, url.pathname.slice(STATIC_PREFIX.length));
      return true;
    }
    if (url.pathname === FAVICON) {
      await serveFile(req, res, path.join(options.distDir, "favicon.ico"), "public, max-age=86400");
      return true;
    }
    if (!PAGE.test(url.pathname)) return false;
    const html = await readFile(indexFile).catch(() => null);
    if (!html) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end("The console is not built: run `npm run build:console` (npm ci does it), then reload.\n");
      return true;
    }
    res.writeHead(200, { ...pageHeaders(url.pathname.startsWith("/watch/")), "content-length": html.length });
    res.end(req.method === "HEAD" ? undefined : html);
    return true;
  };

  async function serveStatic(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    // One plain file name, never a path: nothing outside dist/static can be named.
    if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(name)) return notFound(res);
    // Vite puts a content hash in every name under static/.
    await serveFile(req, res, path.join(options.distDir, "static", name), "public, max-age=31536000, immutable");
  }

  /** A file of the build with its content type, as the build's brotli or gzip copy where taken. */
  async function serveFile(req: IncomingMessage, res: ServerResponse, file: string, cacheControl: string) {
    const type = CONTENT_TYPES[path.extname(file)];
    const info = type ? await stat(file).catch(() => null) : null;
    if (!info?.isFile()) return notFound(res);
    // The build's brotli or gzip copy (console/build.ts), when the browser takes it.
    const compressible = isCompressible(file);
    const encoding = compressible ? preferredEncoding(req.headers["accept-encoding"]) : null;
    const encodedFile = encoding ? file + ENCODED_SUFFIX[encoding] : null;
    const encodedInfo = encodedFile ? await stat(encodedFile).catch(() => null) : null;
    const sent = encodedInfo?.isFile() ? encodedFile! : file;
    res.writeHead(200, {
      "content-type": type!,
      "content-length": sent === file ? info.size : encodedInfo!.size,
      ...(sent === file ? {} : { "content-encoding": encoding! }),
      ...(compressible ? { vary: "accept-encoding" } : {}),
      "cache-control": cacheControl,
      "x-content-type-options": "nosniff",
    });
    if (req.method === "HEAD") return void res.end();
    await new Promise<void>((resolve, reject) => {
      createReadStream(sent).on("error", reject).pipe(res).on("finish", resolve).on("error", reject);
    });
  }
}
