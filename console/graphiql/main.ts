// GraphiQL at /graphql: the graphiql package (CodeMirror editors, React), built by the console's
// build into hashed files (console/build.ts). About a fifth of the Monaco-based GraphiQL's code, so
// a first visit is usable in well under 2 s on a 2-core machine (docs/performance.md, "Page weight").
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import "./page.css";

/** What the API's page hands over (src/http/graphiql.ts): JSON in the root element's data-options. */
interface PageOptions {
  title?: string;
  defaultQuery?: string;
  endpoint?: string;
}

/** The sessionStorage entry where the console keeps the signed-in credential (console/src/session.ts). */
const CONSOLE_CREDENTIAL_KEY = "videograph.authorization";

const root = document.getElementById("root")!;
const options = JSON.parse(root.dataset.options ?? "{}") as PageOptions;
// The page is served at the GraphQL endpoint itself.
const endpoint = new URL(options.endpoint ?? location.pathname, location.href);
const socket = new URL(endpoint);
socket.protocol = location.protocol === "https:" ? "wss:" : "ws:";

// A tab signed in to the console (same origin, same tab, so the same sessionStorage) starts with
// its credential in the headers editor. Queries and mutations go over HTTP with the editor's
// headers; subscriptions over graphql-ws, with those headers as the connection's parameters.
const authorization = sessionStorage.getItem(CONSOLE_CREDENTIAL_KEY);
const headers = authorization ? JSON.stringify({ authorization }, null, 2) : undefined;
const fetcher = createGraphiQLFetcher({ url: endpoint.href, subscriptionUrl: socket.href });

createRoot(root).render(
  createElement(GraphiQL, {
    fetcher,
    defaultQuery: options.defaultQuery,
    headers,
    defaultHeaders: headers,
    defaultEditorToolsVisibility: authorization ? "headers" : undefined,
    shouldPersistHeaders: false,
  }),
);
