import type { ComponentChildren } from "preact";

/**
 * A table (give it a `<caption>`). On a narrow screen it scrolls sideways in its own box, so it takes focus and
 * the arrow keys scroll it (WCAG's scrollable region). `stacked`: rows hold buttons that must never scroll out
 * of sight, so its cells wrap and on a phone each row is a card of label–value lines (`data-label`); no focus.
 */
export function Table({ children, stacked = false }: { children: ComponentChildren; stacked?: boolean }) {
  if (stacked) return <table class="stacked">{children}</table>;
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a box that scrolls must be reachable from the keyboard (WCAG 2.1.1).
    <table tabIndex={0}>{children}</table>
  );
}

/** The header of a table's last column, its rows' actions: named for screen readers, blank on screen. */
export function ActionsHeader() {
  return (
    <th scope="col">
      <span class="visually-hidden">Actions</span>
    </th>
  );
}

/** A row's actions (its buttons), under ActionsHeader; a stacked table keeps them on one line, a phone's wraps them. */
export function ActionsCell({ children }: { children?: ComponentChildren }) {
  return <td class="row-actions">{children}</td>;
}
