// The sessions table's state: a page of rows from ListSessions, kept live by WatchSessions events,
// and the user's selection. Pure data, no DOM: unit-tested in test/table.test.ts.

export const enum EventKind {
  Snapshot = 1,
  SnapshotDone = 2,
  Opened = 3,
  Updated = 4,
  Ended = 5,
  Denied = 6,
}

export interface RowLike {
  id: string;
}

export interface WatchEventLike<R extends RowLike> {
  kind: number;
  session?: R;
}

/** What applying one event asks of the caller. */
export interface MergeOutcome {
  /** The rows changed (re-render). */
  changed: boolean;
  /** A session that belongs somewhere in the list appeared: re-read the page (sorted, paged by the server). */
  refetch: boolean;
  /** Change in the number of matching sessions. */
  totalDelta: number;
}

export interface TablePage<R extends RowLike> {
  /** Row order as the server sorted them. */
  order: string[];
  rows: Map<string, R>;
  /** Rows kept on screen after their session ended, because the user is following their end. */
  lingering: Set<string>;
}

export function pageOf<R extends RowLike>(rows: R[]): TablePage<R> {
  return { order: rows.map((row) => row.id), rows: new Map(rows.map((row) => [row.id, row])), lingering: new Set() };
}

/**
 * Applies a watch event to the page.
 * - UPDATED: the row is replaced in place (same position, so scroll does not jump).
 * - ENDED: the row leaves — unless `keep` says the user follows that session's end (a termination
 *   they issued), then it stays, marked ended, until `dropLingering`. When the list shows ended
 *   sessions (`showsEnded`), an end is a new row for the server to place.
 * - OPENED / SNAPSHOT: a new session; its place depends on the server's sort, so the page is re-read.
 */
export function applyEvent<R extends RowLike>(
  page: TablePage<R>,
  event: WatchEventLike<R>,
  options: { keep?: (id: string) => boolean; showsEnded?: boolean } = {},
): MergeOutcome {
  const session = event.session;
  const none: MergeOutcome = { changed: false, refetch: false, totalDelta: 0 };
  if (!session) return none;
  const present = page.rows.has(session.id);
  switch (event.kind) {
    case EventKind.Updated:
      if (!present) return none;
      page.rows.set(session.id, session);
      return { changed: true, refetch: false, totalDelta: 0 };
    case EventKind.Ended:
      if (options.showsEnded) {
        if (present) page.rows.set(session.id, session);
        return { changed: present, refetch: !present, totalDelta: 0 };
      }
      if (!present) return { changed: false, refetch: false, totalDelta: -1 };
      if (options.keep?.(session.id)) {
        page.rows.set(session.id, session);
        page.lingering.add(session.id);
        return { changed: true, refetch: false, totalDelta: -1 };
      }
      page.rows.delete(session.id);
      page.order = page.order.filter((id) => id !== session.id);
      return { changed: true, refetch: false, totalDelta: -1 };
    case EventKind.Opened:
    case EventKind.Snapshot:
      if (present) {
        page.rows.set(session.id, session);
        return { changed: true, refetch: false, totalDelta: 0 };
      }
      return { changed: false, refetch: true, totalDelta: 1 };
    default:
      return none;
  }
}

/** Removes the rows kept after their end once the user no longer follows them. */
export function dropLingering<R extends RowLike>(page: TablePage<R>, ids: Iterable<string>): boolean {
  let changed = false;
  for (const id of ids) {
    if (!page.lingering.delete(id)) continue;
    page.rows.delete(id);
    page.order = page.order.filter((other) => other !== id);
    changed = true;
  }
  return changed;
}

/**
 * A re-read page replaces the rows, keeping the lingering ones the user still follows at the end.
 */
export function replacePage<R extends RowLike>(old: TablePage<R>, rows: R[]): TablePage<R> {
  const next = pageOf(rows);
  for (const id of old.lingering) {
    const row = old.rows.get(id);
    if (row && !next.rows.has(id)) {
      next.rows.set(id, row);
      next.order.push(id);
      next.lingering.add(id);
    }
  }
  return next;
}

/**
 * The selection: ids the user ticked. It survives re-reads and updates; a session that ended is
 * dropped from it (it can no longer be ended), others stay even when paged out of view.
 */
export class Selection {
  private ids = new Set<string>();

  has(id: string): boolean {
    return this.ids.has(id);
  }
  toggle(id: string): void {
    if (!this.ids.delete(id)) this.ids.add(id);
  }
  set(ids: Iterable<string>, selected: boolean): void {
    for (const id of ids) {
      if (selected) this.ids.add(id);
      else this.ids.delete(id);
    }
  }
  clear(): void {
    this.ids.clear();
  }
  /** Forget sessions that ended. */
  ended(id: string): void {
    this.ids.delete(id);
  }
  get size(): number {
    return this.ids.size;
  }
  values(): string[] {
    return [...this.ids];
  }
}
