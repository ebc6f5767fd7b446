import type { ComponentChildren } from "preact";

/**
 * A table (give it a `<caption>`: its name). On a narrow screen it scrolls sideways in its own box
 * (style.css), so it takes the keyboard's focus too: the arrow keys scroll it (WCAG's scrollable
 * region, checked by axe-core in test/console-library.test.ts).
 */
export function Table({ children }: { children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a box that scrolls must be reachable from the keyboard (WCAG 2.1.1).
    <table tabIndex={0}>{children}</table>
  );
}
