import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import type { GraphiQLOptions } from "graphql-yoga";

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
