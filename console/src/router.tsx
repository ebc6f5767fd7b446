import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

/** Client-side routes: the API answers each of them with index.html (src/http/console.ts). */
export function navigate(path: string): void {
  history.pushState(null, "", path);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function useLocation(): URL {
  const [url, setUrl] = useState(() => new URL(location.href));
  useEffect(() => {
    const update = () => setUrl(new URL(location.href));
    addEventListener("popstate", update);
    return () => removeEventListener("popstate", update);
  }, []);
  return url;
}

/** The tab's title while a page shows: `name · videograph`, or "videograph" until the name is known. */
export function useTitle(name: string | null | undefined): void {
  useEffect(() => {
    document.title = name ? `${name} · videograph` : "videograph";
  }, [name]);
}

export function Link(props: { href: string; class?: string; children: ComponentChildren; current?: boolean }) {
  return (
    <a
      href={props.href}
      class={props.class}
      aria-current={props.current ? "page" : undefined}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
