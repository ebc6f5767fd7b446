import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { onSignedOut } from "./graphql.ts";
import { SignInPage } from "./pages/sign-in.tsx";
import { SourcesPage } from "./pages/sources.tsx";
import { UploadPage } from "./pages/upload.tsx";
import { VideoPage } from "./pages/video.tsx";
import { VideosPage } from "./pages/videos.tsx";
import { WatchPage } from "./pages/watch.tsx";
import { WebhooksPage } from "./pages/webhooks.tsx";
import { KeysPage } from "./pages/keys.tsx";
import { LivePage } from "./pages/live.tsx";
import { Link, navigate, useLocation } from "./router.tsx";
import { credential, credentialKind, forgetCredential } from "./session.ts";

function App() {
  const url = useLocation();
  const [signedIn, setSignedIn] = useState(() => credential() !== null);
  useEffect(() => onSignedOut(() => setSignedIn(false)), []);
  const path = url.pathname;

  // The watch page is public: no sign-in, no console chrome (it is what the embed snippet frames).
  const watch = /^\/watch\/([\w-]+)$/.exec(path);
  if (watch) return <WatchPage videoId={watch[1]!} params={url.searchParams} />;

  if (!signedIn) return <SignInPage onSignedIn={() => setSignedIn(true)} />;

  const video = /^\/videos\/([\w-]+)$/.exec(path);
  let page = <VideosPage />;
  if (video) page = <VideoPage key={video[1]} videoId={video[1]!} />;
  else if (path === "/upload") page = <UploadPage />;
  else if (path === "/sources") page = <SourcesPage />;
  else if (path === "/live") page = <LivePage />;
  else if (path === "/webhooks") page = <WebhooksPage />;
  else if (path === "/keys") page = <KeysPage />;

  const nav = (href: string, label: string) => (
    <li>
      <Link href={href} current={path === href || (href === "/" && path.startsWith("/videos"))}>
        {label}
      </Link>
    </li>
  );
  return (
    <>
      <header class="top">
        <Link href="/" class="brand">
          videograph
        </Link>
        <nav aria-label="Console">
          <ul>
            {nav("/", "Videos")}
            {nav("/upload", "Upload")}
            {nav("/sources", "Sources")}
            {nav("/live", "Live")}
            {nav("/webhooks", "Webhooks")}
            {nav("/keys", "API keys")}
            <li>
              {/* Same tab: GraphiQL reads the credential from this tab's sessionStorage. */}
              <a href="/graphql">GraphiQL</a>
            </li>
          </ul>
        </nav>
        <button
          type="button"
          class="link"
          onClick={() => {
            forgetCredential();
            setSignedIn(false);
            navigate("/");
          }}
        >
          Sign out <span class="muted">({credentialKind()})</span>
        </button>
      </header>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
