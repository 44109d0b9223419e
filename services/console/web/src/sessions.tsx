// The Active Sessions page: dashboard cards, the live table, and the actions on sessions.

import { create } from "@bufbuild/protobuf";
import { useEffect, useMemo, useReducer, useRef, useState } from "preact/hooks";
import { Code, ConnectError, describeError, isUnauthenticated, policy, registry, termination } from "./api";
import { elapsedSeconds, formatDuration, formatLocation } from "./format";
import { SessionFilterSchema, SessionOrderBy, type SessionFilter, type SessionStats } from "./gen/vigil/v1/registry_pb";
import { EndReason, type Session } from "./gen/vigil/v1/session_pb";
import { DeliveryState, type Termination } from "./gen/vigil/v1/termination_pb";
import type { Me } from "./main";
import { applyEvent, dropLingering, EventKind, pageOf, replacePage, Selection, type TablePage } from "./table";
import { Dialog, Icon, millis, RESOURCE_TYPES, StatusBadge, Time } from "./ui";

export interface Filters {
  query: string;
  status: number; // 0 = live (active and idle)
  type: number;
  user: string;
  gateway: string;
  country: string;
  flagged: boolean;
}

const EMPTY_FILTERS: Filters = { query: "", status: 0, type: 0, user: "", gateway: "", country: "", flagged: false };

function toFilter(filters: Filters, forWatch: boolean): SessionFilter {
  return create(SessionFilterSchema, {
    // The watch sends every status when none is named, and ends whatever the statuses.
    statuses: filters.status ? [filters.status] : forWatch ? [] : [],
    query: filters.query.trim(),
    resourceType: filters.type,
    user: filters.user.trim(),
    gatewayId: filters.gateway.trim(),
    countryCode: filters.country.trim(),
    flaggedOnly: filters.flagged,
  });
}

/** Where a session's end stands, from its termination. */
interface Delivery {
  state: DeliveryState;
  detail: string;
}

type DialogState =
  | { kind: "end"; sessions: Session[] }
  | { kind: "all"; idleOnly: boolean; count: number | null }
  | null;

type Live = "connecting" | "live" | "broken";

const DELIVERY_LABEL: Record<number, string> = {
  [DeliveryState.PENDING]: "pending",
  [DeliveryState.DELIVERED]: "delivered",
  [DeliveryState.ACKNOWLEDGED]: "acknowledged",
  [DeliveryState.FAILED]: "failed",
  [DeliveryState.ALREADY_ENDED]: "already ended",
};

function isFinal(state: DeliveryState): boolean {
  return state === DeliveryState.ACKNOWLEDGED || state === DeliveryState.FAILED || state === DeliveryState.ALREADY_ENDED;
}

export function SessionsPage({ me, navigate, onSignedOut }: { me: Me; navigate: (to: string) => void; onSignedOut: () => void }) {
  const [filters, setFilters] = useState<Filters>(EMPTY_FILTERS);
  const [draftQuery, setDraftQuery] = useState("");
  const [orderBy, setOrderBy] = useState<SessionOrderBy>(SessionOrderBy.STARTED_AT);
  const [ascending, setAscending] = useState(false);
  const [pageSize, setPageSize] = useState(50);
  const [pageTokens, setPageTokens] = useState<string[]>([""]);
  const pageIndex = pageTokens.length - 1;
  const [, redraw] = useReducer((n: number) => n + 1, 0);
  const page = useRef<TablePage<Session>>(pageOf([]));
  const selection = useRef(new Selection());
  const deliveries = useRef(new Map<string, Delivery>());
  const [total, setTotal] = useState<{ size: number; lowerBound: boolean }>({ size: 0, lowerBound: false });
  const [nextToken, setNextToken] = useState("");
  const [loaded, setLoaded] = useState(false);
  const [listError, setListError] = useState("");
  const [stats, setStats] = useState<{ stats: SessionStats; at: number } | null>(null);
  const [live, setLive] = useState<Live>("connecting");
  const [liveError, setLiveError] = useState("");
  const [dialog, setDialog] = useState<DialogState>(null);
  const [notice, setNotice] = useState<{ text: string; tone: "ok" | "error" } | null>(null);
  const [now, setNow] = useState(Date.now());
  const canRead = me.permissions.includes("sessions:read");
  const canEnd = me.permissions.includes("sessions:terminate");
  const canEndAll = me.permissions.includes("sessions:terminate-all");
  const canLock = me.permissions.includes("locks:write");

  // Durations tick.
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);

  // The search box asks the server once typing pauses.
  useEffect(() => {
    const timer = setTimeout(() => setFilters((current) => (current.query === draftQuery ? current : { ...current, query: draftQuery })), 250);
    return () => clearTimeout(timer);
  }, [draftQuery]);

  const listKey = JSON.stringify([filters, orderBy, ascending, pageSize, pageTokens[pageIndex]]);
  const watchKey = JSON.stringify(filters);

  // Latest request wins: a slow answer to an old query never overwrites a newer one.
  const listSeq = useRef(0);
  const reload = useRef<() => Promise<void>>(async () => {});
  reload.current = async () => {
    const seq = ++listSeq.current;
    try {
      const response = await registry.listSessions({
        filter: toFilter(filters, false),
        orderBy,
        ascending,
        pageSize,
        pageToken: pageTokens[pageIndex],
      });
      if (seq !== listSeq.current) return;
      page.current = replacePage(page.current, response.sessions);
      setTotal({ size: Number(response.totalSize), lowerBound: response.totalSizeIsLowerBound });
      setNextToken(response.nextPageToken);
      setListError("");
      setLoaded(true);
      redraw(0);
    } catch (error) {
      if (seq !== listSeq.current) return;
      if (isUnauthenticated(error)) return onSignedOut();
      setListError(describeError(error));
      setLoaded(true);
    }
  };

  const statsTimer = useRef<number | null>(null);
  const refreshStats = async () => {
    if (!canRead) return;
    try {
      const response = await registry.getStats({});
      setStats({ stats: response, at: Date.now() });
    } catch {
      // The cards keep their last figures; the banner tells whether the server is reachable.
    }
  };
  const scheduleStats = () => {
    if (statsTimer.current !== null) return;
    statsTimer.current = window.setTimeout(() => {
      statsTimer.current = null;
      void refreshStats();
    }, 1500);
  };
  useEffect(() => {
    const timer = setInterval(refreshStats, 10_000);
    return () => clearInterval(timer);
  }, []);

  // Re-reads of the page asked for by new sessions: at most about two a second.
  const refetchTimer = useRef<number | null>(null);
  const scheduleRefetch = () => {
    if (refetchTimer.current !== null) return;
    refetchTimer.current = window.setTimeout(() => {
      refetchTimer.current = null;
      void reload.current();
    }, 400);
  };

  useEffect(() => {
    void reload.current();
  }, [listKey]);

  // Events are applied as they come and drawn once per frame.
  const drawPending = useRef(false);
  const pendingDelta = useRef(0);
  const scheduleDraw = () => {
    if (drawPending.current) return;
    drawPending.current = true;
    requestAnimationFrame(() => {
      drawPending.current = false;
      const delta = pendingDelta.current;
      pendingDelta.current = 0;
      // A count the server gave as "at least" stays as it was until the next read.
      if (delta !== 0) setTotal((current) => (current.lowerBound ? current : { ...current, size: Math.max(0, current.size + delta) }));
      redraw(0);
    });
  };

  // The live feed. It is opened first and the page read once its headers arrive, so no change
  // between the read and the watch is lost; when it breaks, a banner says so and it is reopened
  // with backoff, and the page and the cards are read again (never a silently stale table).
  useEffect(() => {
    const abort = new AbortController();
    let attempt = 0;
    const statusFilter = filters.status;
    const run = async () => {
      while (!abort.signal.aborted) {
        try {
          const stream = registry.watchSessions(
            { filter: toFilter(filters, true), includeSnapshot: false },
            {
              signal: abort.signal,
              timeoutMs: 0,
              onHeader: () => {
                attempt = 0;
                setLive("live");
                setLiveError("");
                void reload.current();
                void refreshStats();
              },
            },
          );
          for await (const event of stream) {
            const session = event.session;
            if ((event.kind as number) === EventKind.Ended && session) {
              selection.current.ended(session.id);
            }
            const outcome = applyEvent(page.current, event, {
              keep: (id) => deliveries.current.has(id),
              showsEnded: statusFilter === 3,
            });
            if (statusFilter && (event.kind as number) === EventKind.Updated) scheduleRefetch();
            if (outcome.refetch) scheduleRefetch();
            // No state change per event (each would render the page): counted here, drawn once a frame.
            if (outcome.totalDelta !== 0) {
              pendingDelta.current += outcome.totalDelta;
              scheduleDraw();
            }
            if (outcome.changed) scheduleDraw();
            scheduleStats();
          }
          throw new Error("the server closed the live feed");
        } catch (error) {
          if (abort.signal.aborted) return;
          if (isUnauthenticated(error)) return onSignedOut();
          setLive("broken");
          setLiveError(describeError(error));
          const wait = Math.min(500 * 2 ** attempt, 5000);
          attempt++;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    };
    void run();
    return () => abort.abort();
  }, [watchKey]);

  // Rows about to be ended are followed from before the call: the end can reach the watch before
  // the termination's answer reaches the page, and the row must stay to show how it went.
  const expectEnd = (ids: string[]) => {
    ids.forEach((id) => deliveries.current.set(id, { state: DeliveryState.PENDING, detail: "" }));
    redraw(0);
  };
  const forgetEnd = (ids: string[]) => {
    ids.forEach((id) => deliveries.current.delete(id));
    dropLingering(page.current, ids);
    redraw(0);
  };

  // Follows a termination until every session's end is settled, then lets the ended rows go.
  const follow = async (first: Termination) => {
    let current = first;
    const started = Date.now();
    for (;;) {
      for (const command of current.commands) {
        deliveries.current.set(command.sessionId, { state: command.state, detail: command.detail });
      }
      redraw(0);
      const open = current.commands.filter((command) => !isFinal(command.state));
      if (open.length === 0 || Date.now() - started > 30_000) break;
      await new Promise((resolve) => setTimeout(resolve, 400));
      try {
        current = await termination.getTermination({ id: first.id });
      } catch {
        break;
      }
    }
    const acknowledged = current.commands.filter((command) => command.state === DeliveryState.ACKNOWLEDGED).length;
    const failed = current.commands.filter((command) => command.state === DeliveryState.FAILED).length;
    setNotice({
      text: `${acknowledged} of ${current.commands.length} session${current.commands.length === 1 ? "" : "s"} ended${failed ? `, ${failed} failed` : ""}.`,
      tone: failed ? "error" : "ok",
    });
    // Failures stay visible; settled ones fade after a moment.
    setTimeout(() => {
      // Also rows followed in advance that the termination did not cover (ended meanwhile).
      const settled = [...deliveries.current].filter(([, delivery]) => isFinal(delivery.state) || delivery.state === DeliveryState.PENDING).filter(([, delivery]) => delivery.state !== DeliveryState.FAILED).map(([id]) => id);
      settled.forEach((id) => deliveries.current.delete(id));
      dropLingering(page.current, settled);
      redraw(0);
    }, 4000);
  };

  const rows = page.current.order.map((id) => page.current.rows.get(id)!).filter(Boolean);
  const visibleIds = rows.filter((row) => row.status !== 3).map((row) => row.id);
  const allVisibleSelected = visibleIds.length > 0 && visibleIds.every((id) => selection.current.has(id));

  const setFilter = (patch: Partial<Filters>) => {
    setFilters((current) => ({ ...current, ...patch }));
    setPageTokens([""]);
  };
  const sortBy = (key: SessionOrderBy) => {
    if (orderBy === key) setAscending(!ascending);
    else {
      setOrderBy(key);
      setAscending(key === SessionOrderBy.USER || key === SessionOrderBy.RESOURCE);
    }
    setPageTokens([""]);
  };

  const openEndAll = async (idleOnly: boolean) => {
    setDialog({ kind: "all", idleOnly, count: null });
    try {
      const fresh = await registry.getStats({});
      setStats({ stats: fresh, at: Date.now() });
      setDialog({ kind: "all", idleOnly, count: Number(idleOnly ? fresh.idle : fresh.active + fresh.idle) });
    } catch (error) {
      setNotice({ text: describeError(error), tone: "error" });
      setDialog(null);
    }
  };

  const selectedSessions = (): Session[] =>
    selection.current.values().map((id) => page.current.rows.get(id) ?? ({ id, user: "", resourceName: "" } as Session));

  const cards = stats?.stats;
  const elapsedSinceStats = stats ? Math.floor((now - stats.at) / 1000) : 0;
  const liveCount = cards ? Number(cards.active + cards.idle) : 0;
  const totalDuration = cards ? Number(cards.totalLiveDurationSeconds) + liveCount * elapsedSinceStats : 0;

  return (
    <section aria-labelledby="sessions-title">
      <div class="page-head">
        <div>
          <h1 id="sessions-title">Active Sessions</h1>
          <p class="muted">Every live session through your gateways, as it happens.</p>
        </div>
        {canEndAll && (
          <div class="actions">
            <button class="btn" onClick={() => openEndAll(true)} disabled={!cards || cards.idle === 0n} data-testid="end-all-idle">
              <Icon name="moon" /> End all idle
            </button>
            <button class="btn btn-danger" onClick={() => openEndAll(false)} disabled={!cards || liveCount === 0} data-testid="end-all">
              <Icon name="x" /> End All Sessions
            </button>
          </div>
        )}
      </div>

      {live === "broken" && (
        <div class="banner banner-error" role="alert" data-testid="stream-banner">
          <Icon name="alert" /> Live updates interrupted — reconnecting… The table may be out of date. <span class="muted">{liveError}</span>
        </div>
      )}
      {live === "connecting" && <div class="banner" role="status">Connecting to the live feed…</div>}
      {notice && (
        <div class={`banner ${notice.tone === "error" ? "banner-error" : "banner-ok"}`} role="status" data-testid="notice">
          {notice.text}
          <button class="link" onClick={() => setNotice(null)} aria-label="Dismiss">
            <Icon name="x" />
          </button>
        </div>
      )}

      {canRead && (
        <div class="cards" data-testid="cards">
          <Card label="Active" value={cards ? String(cards.active) : "…"} icon="wifi" testid="card-active" />
          <Card label="Idle" value={cards ? String(cards.idle) : "…"} icon="moon" testid="card-idle" />
          <Card label="Total duration" value={cards ? formatDuration(totalDuration) : "…"} icon="clock" testid="card-duration" />
          <Card label="Flagged" value={cards ? String(cards.flagged) : "…"} icon="flag" testid="card-flagged" />
          <Card label="Gateways connected" value={cards ? String(cards.gatewaysConnected) : "…"} icon="unplug" testid="card-gateways" />
          <Card label="Ended last 24 h" value={cards ? String(cards.endedLast24h) : "…"} icon="x" testid="card-ended" />
        </div>
      )}

      <div class="toolbar" role="search">
        <input
          type="search"
          placeholder="Search user, resource, device, IP, city, gateway"
          aria-label="Search sessions"
          value={draftQuery}
          onInput={(event) => setDraftQuery(event.currentTarget.value)}
          data-testid="search"
        />
        <select aria-label="Status" value={filters.status} onChange={(event) => setFilter({ status: Number(event.currentTarget.value) })}>
          <option value={0}>Live (active and idle)</option>
          <option value={1}>Active</option>
          <option value={2}>Idle</option>
          <option value={3}>Disconnected</option>
        </select>
        <select aria-label="Type" value={filters.type} onChange={(event) => setFilter({ type: Number(event.currentTarget.value) })}>
          <option value={0}>Any type</option>
          <option value={1}>SSH</option>
          <option value={2}>RDP</option>
          <option value={3}>Web</option>
        </select>
        <FilterInput label="User" value={filters.user} onCommit={(user) => setFilter({ user })} />
        <FilterInput label="Gateway" value={filters.gateway} onCommit={(gateway) => setFilter({ gateway })} />
        <FilterInput label="Country" value={filters.country} onCommit={(country) => setFilter({ country })} size={4} />
        <label class="check">
          <input type="checkbox" checked={filters.flagged} onChange={(event) => setFilter({ flagged: event.currentTarget.checked })} /> Flagged only
        </label>
        {canEnd && (
          <button
            class="btn btn-danger"
            disabled={selection.current.size === 0}
            onClick={() => setDialog({ kind: "end", sessions: selectedSessions() })}
            data-testid="end-selected"
          >
            <Icon name="x" /> End sessions{selection.current.size ? ` (${selection.current.size})` : ""}
          </button>
        )}
      </div>

      {listError && (
        <div class="banner banner-error" role="alert">
          {listError}
        </div>
      )}

      <div class="table-wrap" data-testid="table-wrap">
        <table class="sessions" data-testid="sessions-table">
          <thead>
            <tr>
              {canEnd && (
                <th class="narrow">
                  <input
                    type="checkbox"
                    aria-label="Select every session on this page"
                    checked={allVisibleSelected}
                    onChange={(event) => {
                      selection.current.set(visibleIds, event.currentTarget.checked);
                      redraw(0);
                    }}
                  />
                </th>
              )}
              <SortHeader label="Resource" by={SessionOrderBy.RESOURCE} orderBy={orderBy} ascending={ascending} onSort={sortBy} />
              <SortHeader label="User" by={SessionOrderBy.USER} orderBy={orderBy} ascending={ascending} onSort={sortBy} />
              <th>Device</th>
              <SortHeader label="Duration" by={SessionOrderBy.STARTED_AT} orderBy={orderBy} ascending={ascending} onSort={sortBy} />
              <th>Location</th>
              <SortHeader label="Status" by={SessionOrderBy.LAST_ACTIVITY} orderBy={orderBy} ascending={ascending} onSort={sortBy} title="Sort by last input" />
              <th>Gateway</th>
              <SortHeader label="Risk" by={SessionOrderBy.RISK_SCORE} orderBy={orderBy} ascending={ascending} onSort={sortBy} />
              <th>Flags</th>
              <th class="narrow">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody onKeyDown={moveBetweenRows}>
            {rows.map((session) => (
              <SessionRow
                key={session.id}
                session={session}
                now={now}
                selectable={canEnd}
                selected={selection.current.has(session.id)}
                delivery={deliveries.current.get(session.id)}
                onToggle={() => {
                  selection.current.toggle(session.id);
                  redraw(0);
                }}
                onEnd={canEnd ? () => setDialog({ kind: "end", sessions: [session] }) : undefined}
                onOpen={() => navigate(`/sessions/${session.id}`)}
              />
            ))}
          </tbody>
        </table>
        {loaded && rows.length === 0 && !listError && (
          <div class="empty" data-testid="empty-state">
            <Icon name="unplug" />
            <p>
              <strong>No sessions{filters === EMPTY_FILTERS ? "" : " match these filters"}.</strong>
            </p>
            <p class="muted">When someone connects through a gateway, the session appears here at once.</p>
          </div>
        )}
      </div>

      <div class="pager">
        <span class="muted" data-testid="total">
          {rows.length ? `${pageIndex * pageSize + 1}–${pageIndex * pageSize + rows.length}` : "0"} of{" "}
          {total.size.toLocaleString()}
          {total.lowerBound ? "+" : ""}
        </span>
        <label>
          Rows{" "}
          <select value={pageSize} onChange={(event) => { setPageSize(Number(event.currentTarget.value)); setPageTokens([""]); }}>
            {[25, 50, 100, 200].map((size) => (
              <option value={size}>{size}</option>
            ))}
          </select>
        </label>
        <button class="btn" disabled={pageIndex === 0} onClick={() => setPageTokens(pageTokens.slice(0, -1))}>
          Previous
        </button>
        <button class="btn" disabled={!nextToken} onClick={() => setPageTokens([...pageTokens, nextToken])}>
          Next
        </button>
      </div>

      {dialog?.kind === "end" && (
        <EndDialog
          sessions={dialog.sessions}
          canLock={canLock}
          onStart={expectEnd}
          onFailed={forgetEnd}
          onClose={() => setDialog(null)}
          onEnded={(result) => {
            setDialog(null);
            selection.current.clear();
            void follow(result);
          }}
        />
      )}
      {dialog?.kind === "all" && (
        <EndAllDialog
          idleOnly={dialog.idleOnly}
          count={dialog.count}
          onRecount={(count) => setDialog({ ...dialog, count })}
          onStart={() => {
            const covered = rows.filter((row) => row.status === 2 || (!dialog.idleOnly && row.status === 1)).map((row) => row.id);
            expectEnd(covered);
            return covered;
          }}
          onFailed={forgetEnd}
          onClose={() => setDialog(null)}
          onEnded={(result) => {
            setDialog(null);
            selection.current.clear();
            void follow(result);
          }}
        />
      )}
    </section>
  );
}

/**
 * Arrow keys move between rows, staying in the same column (the checkbox, the resource link, the End
 * button); Tab still walks every control.
 */
function moveBetweenRows(event: KeyboardEvent) {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const target = event.target as HTMLElement;
  const row = target.closest("tr");
  const cell = target.closest("td");
  if (!row || !cell) return;
  const column = [...row.children].indexOf(cell);
  let next = (event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling) as HTMLElement | null;
  while (next) {
    const focusable = next.children[column]?.querySelector<HTMLElement>("input:not([disabled]), a[href], button");
    if (focusable) {
      event.preventDefault();
      focusable.focus();
      return;
    }
    next = (event.key === "ArrowDown" ? next.nextElementSibling : next.previousElementSibling) as HTMLElement | null;
  }
}

function Card({ label, value, icon, testid }: { label: string; value: string; icon: string; testid: string }) {
  return (
    <div class="card" data-testid={testid}>
      <div class="card-label">
        <Icon name={icon} /> {label}
      </div>
      <div class="card-value">{value}</div>
    </div>
  );
}

function FilterInput({ label, value, onCommit, size }: { label: string; value: string; onCommit: (value: string) => void; size?: number }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return (
    <input
      aria-label={label}
      placeholder={label}
      size={size ?? 12}
      value={draft}
      onInput={(event) => setDraft(event.currentTarget.value)}
      onChange={() => onCommit(draft)}
      onKeyDown={(event) => event.key === "Enter" && onCommit(draft)}
    />
  );
}

function SortHeader(props: {
  label: string;
  by: SessionOrderBy;
  orderBy: SessionOrderBy;
  ascending: boolean;
  onSort: (by: SessionOrderBy) => void;
  title?: string;
}) {
  const active = props.by === props.orderBy;
  // Duration sorts by start: the longest session started first.
  const flipped = props.by === SessionOrderBy.STARTED_AT;
  const up = flipped ? !props.ascending : props.ascending;
  return (
    <th aria-sort={active ? (up ? "ascending" : "descending") : "none"}>
      <button class="sort" onClick={() => props.onSort(props.by)} title={props.title ?? `Sort by ${props.label.toLowerCase()}`}>
        {props.label}
        <span aria-hidden="true">{active ? (up ? " ▲" : " ▼") : ""}</span>
      </button>
    </th>
  );
}

function SessionRow(props: {
  session: Session;
  now: number;
  selectable: boolean;
  selected: boolean;
  delivery?: Delivery;
  onToggle: () => void;
  onEnd?: () => void;
  onOpen: () => void;
}) {
  const { session, now, delivery } = props;
  const type = RESOURCE_TYPES[session.resourceType] ?? { label: "Other", icon: "globe" };
  const started = millis(session.startedAt);
  const ended = session.status === 3;
  const seconds = ended ? Number(session.durationSeconds) : elapsedSeconds(started, now);
  const flags = session.risk?.flags ?? [];
  return (
    <tr class={`${props.selected ? "selected" : ""} ${ended ? "ended" : ""}`} data-session-id={session.id} data-testid="session-row">
      {props.selectable && (
        <td class="narrow">
          <input
            type="checkbox"
            aria-label={`Select ${session.user}'s session to ${session.resourceName}`}
            checked={props.selected}
            disabled={ended}
            onChange={props.onToggle}
          />
        </td>
      )}
      <td>
        <div class="resource">
          <span class="type-icon" title={type.label}>
            <Icon name={type.icon} label={type.label} />
          </span>
          <div>
            <a
              href={`/sessions/${session.id}`}
              onClick={(event) => {
                event.preventDefault();
                props.onOpen();
              }}
            >
              {session.resourceName}
            </a>
            <div class="muted small">{type.label}</div>
          </div>
        </div>
      </td>
      <td>{session.user}</td>
      <td>
        <div>{session.device || "—"}</div>
        <div class="muted small mono">{session.clientIp}</div>
      </td>
      <td>
        <div data-testid="duration">{formatDuration(seconds)}</div>
        <div class="muted small">
          <Time ts={session.startedAt} now={now} />
        </div>
      </td>
      <td>
        <span class="location">
          <Icon name="pin" /> {formatLocation(session.location)}
        </span>
      </td>
      <td>
        <StatusBadge status={session.status} />
        {delivery && (
          <div class={`delivery delivery-${DELIVERY_LABEL[delivery.state]?.replace(" ", "-")}`} data-testid="delivery" title={delivery.detail}>
            {delivery.state === DeliveryState.FAILED ? <Icon name="alert" /> : delivery.state === DeliveryState.ACKNOWLEDGED ? <Icon name="check" /> : <Icon name="clock" />}
            {DELIVERY_LABEL[delivery.state] ?? "unknown"}
          </div>
        )}
      </td>
      <td class="small">{session.gatewayId}</td>
      <td>
        <span class={`risk ${session.risk && session.risk.score >= 50 ? "risk-high" : ""}`}>{session.risk?.assessed ? session.risk.score : "—"}</span>
      </td>
      <td class="small">
        {flags.map((flag) => (
          <span class="flag" title={flag.explanation}>
            <Icon name="flag" /> {flag.code.replace(/_/g, " ")}
          </span>
        ))}
      </td>
      <td class="narrow">
        {props.onEnd && !ended && (
          <button class="icon-btn danger" onClick={props.onEnd} aria-label={`End ${session.user}'s session to ${session.resourceName}`} title="End session" data-testid="end-row">
            <Icon name="x" />
          </button>
        )}
      </td>
    </tr>
  );
}

const LOCK_CHOICES: Array<[string, number]> = [
  ["15 minutes", 15 * 60],
  ["1 hour", 3600],
  ["4 hours", 4 * 3600],
  ["24 hours", 24 * 3600],
  ["until removed", 0],
];

function EndDialog(props: {
  sessions: Session[];
  canLock: boolean;
  onStart: (ids: string[]) => void;
  onFailed: (ids: string[]) => void;
  onClose: () => void;
  onEnded: (termination: Termination) => void;
}) {
  const [message, setMessage] = useState("");
  const [note, setNote] = useState("");
  const [lock, setLock] = useState(false);
  const [lockFor, setLockFor] = useState(3600);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const users = useMemo(() => [...new Set(props.sessions.map((session) => session.user).filter(Boolean))], [props.sessions]);
  const count = props.sessions.length;
  const single = count === 1 ? props.sessions[0] : null;
  const confirm = async () => {
    setBusy(true);
    setError("");
    const ids = props.sessions.map((session) => session.id);
    props.onStart(ids);
    try {
      const result = await termination.terminate({
        selector: { target: { case: "sessionIds", value: { ids } } },
        reason: EndReason.ADMIN,
        userMessage: message.trim(),
        note: note.trim(),
      });
      if (lock && users.length === 1) {
        await policy.createLock({
          target: { target: { case: "user", value: users[0] } },
          message: message.trim(),
          reason: note.trim() || "ended and locked from the console",
          ttl: lockFor ? { seconds: BigInt(lockFor), nanos: 0 } : undefined,
        });
      }
      props.onEnded(result);
    } catch (failure) {
      props.onFailed(ids);
      setError(describeError(failure));
      setBusy(false);
    }
  };
  return (
    <Dialog label="End sessions" title={<><Icon name="alert" /> {single ? "End session" : `End ${count} sessions`}</>} onClose={props.onClose}>
      <p data-testid="dialog-text">
        {single ? (
          <>
            This will immediately end <strong>{single.user}</strong>'s session to <strong>{single.resourceName}</strong>.
          </>
        ) : (
          <>
            This will immediately end <strong data-testid="dialog-count">{count}</strong> selected sessions.
          </>
        )}{" "}
        Any unsaved work may be lost. Are you sure you want to continue?
      </p>
      <label class="field">
        Message shown to the user (optional)
        <input value={message} onInput={(event) => setMessage(event.currentTarget.value)} placeholder="Security review; please sign in again" />
      </label>
      <label class="field">
        Note for the record (optional)
        <input value={note} onInput={(event) => setNote(event.currentTarget.value)} placeholder="Ticket SOC-1234" />
      </label>
      {props.canLock && users.length === 1 && (
        <div class="field-row">
          <label class="check">
            <input type="checkbox" checked={lock} onChange={(event) => setLock(event.currentTarget.checked)} /> End and lock {users[0]} out for
          </label>
          <select aria-label="Lock duration" value={lockFor} disabled={!lock} onChange={(event) => setLockFor(Number(event.currentTarget.value))}>
            {LOCK_CHOICES.map(([label, seconds]) => (
              <option value={seconds}>{label}</option>
            ))}
          </select>
        </div>
      )}
      {error && (
        <p class="error" role="alert" data-testid="dialog-error">
          {error}
        </p>
      )}
      <div class="dialog-actions">
        <button class="btn" onClick={props.onClose} data-autofocus>
          Cancel
        </button>
        <button class="btn btn-danger" onClick={confirm} disabled={busy} data-testid="confirm-end">
          <Icon name="x" /> {single ? "End session" : `End ${count} sessions`}
        </button>
      </div>
    </Dialog>
  );
}

function EndAllDialog(props: {
  idleOnly: boolean;
  count: number | null;
  onRecount: (count: number) => void;
  onStart: () => string[];
  onFailed: (ids: string[]) => void;
  onClose: () => void;
  onEnded: (termination: Termination) => void;
}) {
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const what = props.idleOnly ? "idle" : "active and idle";
  const confirm = async () => {
    if (props.count === null) return;
    setBusy(true);
    setError("");
    const followed = props.onStart();
    try {
      const result = await termination.terminate({
        selector: { target: { case: "all", value: { idleOnly: props.idleOnly } } },
        reason: EndReason.ADMIN,
        userMessage: message.trim(),
        // The count the admin confirmed: if the world changed meanwhile, the server refuses.
        expectedCount: props.count,
      });
      props.onEnded(result);
    } catch (failure) {
      props.onFailed(followed);
      setBusy(false);
      if (failure instanceof ConnectError && failure.code === Code.FailedPrecondition) {
        const stats = await registry.getStats({}).catch(() => null);
        if (stats) props.onRecount(Number(props.idleOnly ? stats.idle : stats.active + stats.idle));
        setError("The number of sessions changed meanwhile; check the new count and confirm again.");
      } else {
        setError(describeError(failure));
      }
    }
  };
  return (
    <Dialog label="End all sessions" title={<><Icon name="alert" /> {props.idleOnly ? "End all idle sessions" : "End All Sessions"}</>} onClose={props.onClose}>
      <p data-testid="dialog-text">
        {props.count === null ? (
          "Counting…"
        ) : (
          <>
            This will immediately terminate all <strong data-testid="dialog-count">{props.count}</strong> {what} sessions. Any unsaved work may be
            lost. Are you sure you want to continue?
          </>
        )}
      </p>
      <label class="field">
        Message shown to the users (optional)
        <input value={message} onInput={(event) => setMessage(event.currentTarget.value)} />
      </label>
      {error && (
        <p class="error" role="alert" data-testid="dialog-error">
          {error}
        </p>
      )}
      <div class="dialog-actions">
        <button class="btn" onClick={props.onClose} data-autofocus>
          Cancel
        </button>
        <button class="btn btn-danger" onClick={confirm} disabled={busy || !props.count} data-testid="confirm-end">
          <Icon name="x" /> End {props.count ?? ""} sessions
        </button>
      </div>
    </Dialog>
  );
}
