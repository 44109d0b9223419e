// Small shared pieces: icons (inline SVG, so badges never rely on colour alone), badges, dialogs.

import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef } from "preact/hooks";
import { formatClock, formatUtc } from "./format";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

const paths: Record<string, string> = {
  // Resource types
  monitor: "M3 4h18v12H3z M8 20h8 M12 16v4",
  terminal: "M4 5h16v14H4z M7 9l3 3-3 3 M12 15h5",
  globe: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z M3 12h18 M12 3c3 3 3 15 0 18 M12 3c-3 3-3 15 0 18",
  // Statuses
  wifi: "M2 9a15 15 0 0 1 20 0 M5 12.5a10 10 0 0 1 14 0 M8.5 16a5 5 0 0 1 7 0 M12 19.5h.01",
  moon: "M20 14.5A8 8 0 0 1 9.5 4a8 8 0 1 0 10.5 10.5z",
  unplug: "M6 18l-3 3 M18 6l3-3 M7 12l5 5 M12 7l5 5 M9 10l-3 3a3 3 0 0 0 5 5l3-3 M10 9l3-3a3 3 0 0 1 5 5l-3 3",
  pin: "M12 21s-7-6.5-7-11a7 7 0 0 1 14 0c0 4.5-7 11-7 11z M12 10h.01",
  x: "M6 6l12 12 M18 6L6 18",
  alert: "M12 3l10 18H2z M12 10v4 M12 17h.01",
  flag: "M5 21V4 M5 4h11l-2 4 2 4H5",
  check: "M5 12l5 5 9-10",
  clock: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z M12 7v5l3 2",
  lock: "M6 11h12v10H6z M8 11V7a4 4 0 0 1 8 0v4",
};

export function Icon({ name, label }: { name: keyof typeof paths | string; label?: string }) {
  return (
    <svg
      class="icon"
      viewBox="0 0 24 24"
      width="16"
      height="16"
      fill="none"
      stroke="currentColor"
      stroke-width="2"
      stroke-linecap="round"
      stroke-linejoin="round"
      role={label ? "img" : undefined}
      aria-label={label}
      aria-hidden={label ? undefined : "true"}
    >
      <path d={paths[name] ?? paths.globe} />
    </svg>
  );
}

export const RESOURCE_TYPES: Record<number, { label: string; icon: string }> = {
  1: { label: "SSH", icon: "terminal" },
  2: { label: "RDP", icon: "monitor" },
  3: { label: "Web", icon: "globe" },
};

export const STATUSES: Record<number, { label: string; icon: string; tone: string }> = {
  1: { label: "Active", icon: "wifi", tone: "ok" },
  2: { label: "Idle", icon: "moon", tone: "warn" },
  3: { label: "Disconnected", icon: "unplug", tone: "muted" },
};

export function StatusBadge({ status }: { status: number }) {
  const known = STATUSES[status] ?? { label: "Unknown", icon: "alert", tone: "muted" };
  return (
    <span class={`badge badge-${known.tone}`} data-status={known.label.toLowerCase()}>
      <Icon name={known.icon} />
      {known.label}
    </span>
  );
}

export function millis(ts: Timestamp | undefined): number {
  if (!ts) return 0;
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
}

/** A time in the browser's zone, UTC on hover. */
export function Time({ ts, now }: { ts: Timestamp | undefined; now?: number }) {
  if (!ts) return <span class="muted">—</span>;
  const ms = millis(ts);
  return (
    <time dateTime={new Date(ms).toISOString()} title={formatUtc(ms)}>
      {formatClock(ms, now)}
    </time>
  );
}

/** A modal dialog: focus moves in, Tab stays in, Escape cancels, focus returns where it was. */
export function Dialog(props: { title: ComponentChildren; onClose: () => void; children: ComponentChildren; label: string }) {
  const ref = useRef<HTMLDivElement>(null);
  // A layout effect, so focus is inside and the keys are handled before the dialog is first painted
  // (a plain effect runs after: an Escape pressed as the dialog appeared went to the page instead).
  // Keys are heard on the document: the dialog is modal, so Escape cancels wherever focus is.
  useLayoutEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    const root = ref.current!;
    const focusables = () =>
      [...root.querySelectorAll<HTMLElement>("button, input, select, textarea, a[href]")].filter((el) => !el.hasAttribute("disabled"));
    (root.querySelector<HTMLElement>("[data-autofocus]") ?? focusables()[0])?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        event.preventDefault();
        props.onClose();
      } else if (event.key === "Tab") {
        const items = focusables();
        if (items.length === 0) return;
        const first = items[0];
        const last = items[items.length - 1];
        if (event.shiftKey && document.activeElement === first) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && document.activeElement === last) {
          event.preventDefault();
          first.focus();
        }
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      previous?.focus?.();
    };
  }, []);
  return (
    <div class="backdrop" onClick={(event) => event.target === event.currentTarget && props.onClose()}>
      <div class="dialog" role="alertdialog" aria-modal="true" aria-label={props.label} ref={ref}>
        <h2 class="dialog-title">{props.title}</h2>
        {props.children}
      </div>
    </div>
  );
}
