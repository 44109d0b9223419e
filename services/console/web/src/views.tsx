// The other views: a session's detail (deep link /sessions/<id>), terminations, locks, policies,
// gateways and the audit trail.

import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { describeError, policy, registry, termination } from "./api";
import { elapsedSeconds, formatBytes, formatDuration, formatLocation } from "./format";
import type { Lock, LockTarget } from "./gen/vigil/v1/link_pb";
import type { AuditEvent, Policy, PolicyScope } from "./gen/vigil/v1/policy_pb";
import type { Gateway, SessionSelector } from "./gen/vigil/v1/registry_pb";
import { EndReason, type Session } from "./gen/vigil/v1/session_pb";
import { DeliveryState, type Termination } from "./gen/vigil/v1/termination_pb";
import type { Me } from "./main";
import { Icon, millis, RESOURCE_TYPES, StatusBadge, Time } from "./ui";

function useLoad<T>(load: () => Promise<T>, deps: unknown[] = [], everyMs = 0): { data: T | null; error: string; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let cancelled = false;
    load()
      .then((value) => !cancelled && (setData(value), setError("")))
      .catch((failure) => !cancelled && setError(describeError(failure)));
    return () => {
      cancelled = true;
    };
  }, [...deps, tick]);
  useEffect(() => {
    if (!everyMs) return;
    const timer = setInterval(() => setTick((n) => n + 1), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}

const reasonName = (reason: EndReason) => (EndReason[reason] ?? "unknown").toLowerCase().replace(/_/g, " ");
const durationText = (duration: Duration | undefined) => (duration ? formatDuration(Number(duration.seconds)) : "—");

function Row({ label, children }: { label: string; children: preact.ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

export function SessionDetail({ id, me, navigate }: { id: string; me: Me; navigate: (to: string) => void }) {
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState("");
  const [now, setNow] = useState(Date.now());
  const [terminations, setTerminations] = useState<Termination[]>([]);
  useEffect(() => {
    const abort = new AbortController();
    const load = () =>
      registry
        .getSession({ id })
        .then((value) => (setSession(value), setError("")))
        .catch((failure) => setError(describeError(failure)));
    void load();
    if (me.permissions.includes("terminations:read")) {
      termination.listTerminations({ sessionId: id }).then((list) => setTerminations(list.terminations), () => {});
    }
    // Live: the change feed narrowed to this user, picking this session's changes.
    void (async () => {
      while (!abort.signal.aborted) {
        try {
          const first = await registry.getSession({ id });
          for await (const event of registry.watchSessions({ filter: { user: first.user } }, { signal: abort.signal, timeoutMs: 0 })) {
            if (event.session?.id === id) setSession(event.session);
          }
          throw new Error("the live feed ended");
        } catch {
          if (abort.signal.aborted) return;
          await new Promise((resolve) => setTimeout(resolve, 2000));
          void load();
        }
      }
    })();
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, [id]);

  if (error && !session) return <p class="error" role="alert">{error}</p>;
  if (!session) return <p class="muted">Loading…</p>;
  const type = RESOURCE_TYPES[session.resourceType];
  const location = session.location;
  const live = session.status !== 3;
  const seconds = live ? elapsedSeconds(millis(session.startedAt), now) : Number(session.durationSeconds);
  return (
    <section class="detail" data-testid="session-detail">
      <p>
        <a href="/" onClick={(event) => { event.preventDefault(); navigate("/"); }}>← Sessions</a>
      </p>
      <h1>
        {type && <Icon name={type.icon} label={type.label} />} {session.resourceName} <StatusBadge status={session.status} />
      </h1>
      <div class="detail-grid">
        <div class="panel">
          <h2>Session</h2>
          <dl>
            <Row label="Id"><span class="mono">{session.id}</span></Row>
            <Row label="User">{session.user}</Row>
            <Row label="Groups">{session.userGroups.join(", ") || "—"}</Row>
            <Row label="Resource">{session.resourceName} ({type?.label ?? "other"})</Row>
            <Row label="Gateway">{session.gatewayId}</Row>
            <Row label="Device">{session.device || "—"}</Row>
            <Row label="Client IP"><span class="mono">{session.clientIp}</span></Row>
            <Row label="Duration">{formatDuration(seconds)}</Row>
            <Row label="Traffic">{formatBytes(Number(session.bytesIn))} in · {formatBytes(Number(session.bytesOut))} out</Row>
          </dl>
        </div>
        <div class="panel">
          <h2>Location</h2>
          <dl>
            <Row label="Place">{formatLocation(location)}{location?.region ? ` (${location.region})` : ""}{location?.countryName ? ` — ${location.countryName}` : ""}</Row>
            <Row label="Coordinates">
              {location?.hasCoordinates ? `${location.latitude.toFixed(4)}, ${location.longitude.toFixed(4)} (±${location.accuracyRadiusKm} km)` : "—"}
            </Row>
            <Row label="Network">{location?.asn ? `AS${location.asn} ${location.asnOrganization}` : "—"}</Row>
            <Row label="Time zone">{location?.timeZone || "—"}</Row>
          </dl>
          <h2>Risk</h2>
          {session.risk?.assessed ? (
            <>
              <p>
                Score <strong>{session.risk.score}</strong> / 100
              </p>
              <ul class="flags">
                {session.risk.flags.map((flag) => (
                  <li>
                    <Icon name="flag" /> <strong>{flag.code.replace(/_/g, " ")}</strong> (+{flag.points}): {flag.explanation}
                  </li>
                ))}
                {session.risk.flags.length === 0 && <li class="muted">Nothing unusual.</li>}
              </ul>
            </>
          ) : (
            <p class="muted">Not assessed (location unavailable at the start).</p>
          )}
        </div>
        <div class="panel">
          <h2>Timeline</h2>
          <ol class="timeline">
            <li>Started <Time ts={session.startedAt} now={now} /></li>
            <li>Last input <Time ts={session.lastActivityAt} now={now} />{session.status === 2 ? " — idle since then" : ""}</li>
            {terminations.map((item) => (
              <li>
                Ended by <strong>{item.actor}</strong> ({reasonName(item.reason)}) <Time ts={item.createdAt} now={now} />
                {item.note ? ` — ${item.note}` : ""}
              </li>
            ))}
            {session.endedAt && (
              <li>
                Ended <Time ts={session.endedAt} now={now} /> — {reasonName(session.endReason)}
                {session.endDetail ? `: ${session.endDetail}` : ""}
              </li>
            )}
          </ol>
        </div>
      </div>
    </section>
  );
}

export function selectorText(selector: SessionSelector | undefined): string {
  const target = selector?.target;
  switch (target?.case) {
    case "sessionIds":
      return `${target.value.ids.length} session${target.value.ids.length === 1 ? "" : "s"} by id`;
    case "all":
      return target.value.idleOnly ? "all idle sessions" : "all sessions";
    case undefined:
      return "—";
    default:
      return `${target!.case.replace(/([A-Z])/g, " $1").toLowerCase()} ${target!.value}`;
  }
}

const STATE_NAME: Record<number, string> = {
  [DeliveryState.PENDING]: "pending",
  [DeliveryState.DELIVERED]: "delivered",
  [DeliveryState.ACKNOWLEDGED]: "acknowledged",
  [DeliveryState.FAILED]: "failed",
  [DeliveryState.ALREADY_ENDED]: "already ended",
};

export function TerminationsPage() {
  const { data, error } = useLoad(() => termination.listTerminations({ pageSize: 100 }), [], 5000);
  const [open, setOpen] = useState<Termination | null>(null);
  return (
    <section>
      <h1>Terminations</h1>
      <p class="muted">Who ended what, when and why, and whether the gateways did it.</p>
      {error && <p class="error">{error}</p>}
      <div class="table-wrap">
        <table>
          <thead>
            <tr><th>When</th><th>Who</th><th>Selector</th><th>Reason</th><th>Sessions</th><th>Acknowledged</th><th>Failed</th><th>Note</th></tr>
          </thead>
          <tbody>
            {data?.terminations.map((item) => (
              <tr>
                <td><Time ts={item.createdAt} /></td>
                <td>{item.actor}</td>
                <td>
                  <button class="link" onClick={async () => setOpen(await termination.getTermination({ id: item.id }))}>{selectorText(item.selector)}</button>
                </td>
                <td>{reasonName(item.reason)}</td>
                <td>{item.sessionCount}</td>
                <td>{item.acknowledged}</td>
                <td class={item.failed ? "error" : ""}>{item.failed}</td>
                <td>{item.note}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {data && data.terminations.length === 0 && <p class="empty muted">No terminations yet.</p>}
      </div>
      {open && (
        <div class="panel">
          <h2>Delivery of {selectorText(open.selector)} by {open.actor}</h2>
          <table>
            <thead><tr><th>Session</th><th>User</th><th>Gateway</th><th>State</th><th>Attempts</th><th>Detail</th></tr></thead>
            <tbody>
              {open.commands.map((command) => (
                <tr>
                  <td class="mono small">{command.sessionId}</td>
                  <td>{command.user}</td>
                  <td>{command.gatewayId}</td>
                  <td class={command.state === DeliveryState.FAILED ? "error" : ""}>{STATE_NAME[command.state] ?? "unknown"}</td>
                  <td>{command.attempts}</td>
                  <td>{command.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function lockTargetText(target: LockTarget | undefined): string {
  const value = target?.target;
  if (!value?.case) return "—";
  return `${value.case.replace(/([A-Z])/g, " $1").toLowerCase()} ${value.value}`;
}

export function LocksPage({ me }: { me: Me }) {
  const { data, error, reload } = useLoad(() => policy.listLocks({}), [], 5000);
  const canWrite = me.permissions.includes("locks:write");
  const [kind, setKind] = useState<"user" | "group" | "resourceName" | "gatewayId" | "device" | "cidr">("user");
  const [value, setValue] = useState("");
  const [minutes, setMinutes] = useState(60);
  const [message, setMessage] = useState("");
  const [failure, setFailure] = useState("");
  const create = async (event: Event) => {
    event.preventDefault();
    try {
      await policy.createLock({
        target: { target: { case: kind, value: value.trim() } } as never,
        message,
        ttl: minutes ? { seconds: BigInt(minutes * 60), nanos: 0 } : undefined,
        reason: "from the console",
      });
      setValue("");
      setFailure("");
      reload();
    } catch (caught) {
      setFailure(describeError(caught));
    }
  };
  return (
    <section>
      <h1>Locks</h1>
      <p class="muted">A lock ends the sessions it covers and refuses new ones until it expires or is removed.</p>
      {error && <p class="error">{error}</p>}
      {canWrite && (
        <form class="toolbar" onSubmit={create}>
          <select aria-label="Lock target" value={kind} onChange={(event) => setKind(event.currentTarget.value as typeof kind)}>
            <option value="user">User</option>
            <option value="group">Group</option>
            <option value="resourceName">Resource</option>
            <option value="gatewayId">Gateway</option>
            <option value="device">Device</option>
            <option value="cidr">Network (CIDR)</option>
          </select>
          <input aria-label="Lock value" placeholder="alice@acme.example" value={value} onInput={(event) => setValue(event.currentTarget.value)} />
          <select aria-label="For" value={minutes} onChange={(event) => setMinutes(Number(event.currentTarget.value))}>
            <option value={15}>15 minutes</option>
            <option value={60}>1 hour</option>
            <option value={240}>4 hours</option>
            <option value={1440}>24 hours</option>
            <option value={0}>until removed</option>
          </select>
          <input aria-label="Message" placeholder="Message shown to the user" value={message} onInput={(event) => setMessage(event.currentTarget.value)} />
          <button class="btn btn-danger" disabled={!value.trim()}>
            <Icon name="lock" /> Lock
          </button>
          {failure && <span class="error">{failure}</span>}
        </form>
      )}
      <div class="table-wrap">
        <table>
          <thead><tr><th>Target</th><th>Message</th><th>Expires</th><th>By</th><th>Created</th><th>Reason</th>{canWrite && <th />}</tr></thead>
          <tbody>
            {data?.locks.map((lock: Lock) => (
              <tr>
                <td>{lockTargetText(lock.target)}</td>
                <td>{lock.message}</td>
                <td>{lock.expiresAt ? <Time ts={lock.expiresAt} /> : "until removed"}</td>
                <td>{lock.createdBy}</td>
                <td><Time ts={lock.createdAt} /></td>
                <td>{lock.reason}</td>
                {canWrite && (
                  <td>
                    <button class="btn" onClick={async () => { await policy.deleteLock({ id: lock.id }).catch((caught) => setFailure(describeError(caught))); reload(); }}>
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {data && data.locks.length === 0 && <p class="empty muted">No locks in force.</p>}
      </div>
    </section>
  );
}

function scopeText(scope: PolicyScope | undefined): string {
  const value = scope?.scope;
  if (!value?.case || value.case === "global") return "global";
  return `${value.case.replace(/([A-Z])/g, " $1").toLowerCase()} ${value.value}`;
}

const minutes = (value: string) => (value.trim() === "" ? undefined : { seconds: BigInt(Math.round(Number(value) * 60)), nanos: 0 });
const minutesOf = (duration: Duration | undefined) => (duration ? String(Number(duration.seconds) / 60) : "");

/** Create a policy, or change the rules of `editing` (its scope stays). Empty fields leave a rule unset. */
function PolicyForm({ editing, onDone }: { editing: Policy | null; onDone: () => void }) {
  const [scope, setScope] = useState<"global" | "group" | "user" | "resourceName">("group");
  const [target, setTarget] = useState("");
  const [warning, setWarning] = useState(minutesOf(editing?.rules?.idleWarningAfter));
  const [timeout, setTimeoutValue] = useState(minutesOf(editing?.rules?.idleTimeout));
  const [maxDuration, setMaxDuration] = useState(minutesOf(editing?.rules?.maxSessionDuration));
  const [maxSessions, setMaxSessions] = useState(editing?.rules?.maxConcurrentSessions?.toString() ?? "");
  const [description, setDescription] = useState(editing?.description ?? "");
  const [failure, setFailure] = useState("");
  useEffect(() => {
    setWarning(minutesOf(editing?.rules?.idleWarningAfter));
    setTimeoutValue(minutesOf(editing?.rules?.idleTimeout));
    setMaxDuration(minutesOf(editing?.rules?.maxSessionDuration));
    setMaxSessions(editing?.rules?.maxConcurrentSessions?.toString() ?? "");
    setDescription(editing?.description ?? "");
  }, [editing]);
  const save = async (event: Event) => {
    event.preventDefault();
    const rules = {
      idleWarningAfter: minutes(warning),
      idleTimeout: minutes(timeout),
      maxSessionDuration: minutes(maxDuration),
      maxConcurrentSessions: maxSessions.trim() === "" ? undefined : Number(maxSessions),
      concurrencyAction: editing?.rules?.concurrencyAction ?? 0,
      denyRiskScore: editing?.rules?.denyRiskScore,
      flagRiskScore: editing?.rules?.flagRiskScore,
    };
    try {
      if (editing) await policy.updatePolicy({ id: editing.id, rules, description });
      else
        await policy.createPolicy({
          scope: { scope: scope === "global" ? { case: "global", value: {} } : ({ case: scope, value: target.trim() } as never) },
          rules,
          description,
        });
      setFailure("");
      onDone();
    } catch (caught) {
      setFailure(describeError(caught));
    }
  };
  return (
    <form class="toolbar panel" onSubmit={save} data-testid="policy-form">
      {editing ? (
        <strong>Edit the {scopeText(editing.scope)} policy</strong>
      ) : (
        <>
          <select aria-label="Scope" value={scope} onChange={(event) => setScope(event.currentTarget.value as typeof scope)}>
            <option value="global">Global</option>
            <option value="group">Group</option>
            <option value="user">User</option>
            <option value="resourceName">Resource</option>
          </select>
          {scope !== "global" && <input aria-label="Scope value" placeholder="contractors" value={target} onInput={(event) => setTarget(event.currentTarget.value)} />}
        </>
      )}
      <input aria-label="Idle warning (minutes)" placeholder="Idle warning, min" size={10} value={warning} onInput={(event) => setWarning(event.currentTarget.value)} />
      <input aria-label="Idle timeout (minutes)" placeholder="Idle timeout, min" size={10} value={timeout} onInput={(event) => setTimeoutValue(event.currentTarget.value)} />
      <input aria-label="Maximum duration (minutes)" placeholder="Max duration, min" size={10} value={maxDuration} onInput={(event) => setMaxDuration(event.currentTarget.value)} />
      <input aria-label="Maximum sessions" placeholder="Max sessions" size={8} value={maxSessions} onInput={(event) => setMaxSessions(event.currentTarget.value)} />
      <input aria-label="Description" placeholder="Description" value={description} onInput={(event) => setDescription(event.currentTarget.value)} />
      <button class="btn btn-primary">{editing ? "Save" : "Create policy"}</button>
      {editing && (
        <button type="button" class="btn" onClick={onDone}>
          Cancel
        </button>
      )}
      {failure && <span class="error">{failure}</span>}
    </form>
  );
}

export function PoliciesPage({ me }: { me: Me }) {
  const { data, error, reload } = useLoad(() => policy.listPolicies({}));
  const canWrite = me.permissions.includes("policies:write");
  const [editing, setEditing] = useState<Policy | null>(null);
  return (
    <section>
      <h1>Policies</h1>
      <p class="muted">For each rule the most specific policy that sets it wins: user › resource › group › global.</p>
      {error && <p class="error">{error}</p>}
      {canWrite && (
        <PolicyForm
          editing={editing}
          onDone={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
      <div class="table-wrap">
        <table>
          <thead>
            <tr><th>Scope</th><th>Idle warning</th><th>Idle timeout</th><th>Max duration</th><th>Max sessions</th><th>Deny / flag risk</th><th>Description</th><th>Updated</th>{canWrite && <th />}</tr>
          </thead>
          <tbody>
            {data?.policies.map((item: Policy) => (
              <tr>
                <td>{scopeText(item.scope)}</td>
                <td>{durationText(item.rules?.idleWarningAfter)}</td>
                <td>{durationText(item.rules?.idleTimeout)}</td>
                <td>{durationText(item.rules?.maxSessionDuration)}</td>
                <td>{item.rules?.maxConcurrentSessions ?? "—"}</td>
                <td>{item.rules?.denyRiskScore ?? "—"} / {item.rules?.flagRiskScore ?? "—"}</td>
                <td>{item.description}</td>
                <td>{item.updatedBy} <Time ts={item.updatedAt} /></td>
                {canWrite && (
                  <td>
                    <button class="btn" onClick={() => setEditing(item)}>
                      Edit
                    </button>{" "}
                    <button class="btn" onClick={async () => { if (confirm(`Delete the ${scopeText(item.scope)} policy?`)) { await policy.deletePolicy({ id: item.id }); reload(); } }}>
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {data && data.policies.length === 0 && <p class="empty muted">No policies: the defaults apply (idle warning 10m, idle timeout 30m).</p>}
      </div>
    </section>
  );
}

export function GatewaysPage() {
  const { data, error } = useLoad(() => registry.listGateways({}), [], 5000);
  return (
    <section>
      <h1>Gateways</h1>
      {error && <p class="error">{error}</p>}
      <div class="table-wrap">
        <table>
          <thead><tr><th>Gateway</th><th>Status</th><th>Replica</th><th>Connected</th><th>Last seen</th><th>Sessions</th><th>Agent</th></tr></thead>
          <tbody>
            {data?.gateways.map((gateway: Gateway) => (
              <tr>
                <td>{gateway.id}</td>
                <td>{gateway.connected ? <span class="badge badge-ok"><Icon name="wifi" /> Connected</span> : <span class="badge badge-muted"><Icon name="unplug" /> Disconnected</span>}</td>
                <td>{gateway.replica || "—"}</td>
                <td><Time ts={gateway.connectedAt} /></td>
                <td><Time ts={gateway.lastSeenAt} /></td>
                <td>{String(gateway.liveSessions)}</td>
                <td>{gateway.agentVersion}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

interface AuditLine {
  at: Timestamp | undefined;
  actor: string;
  action: string;
  target: string;
  outcome: string;
}

export function AuditPage() {
  const { data, error } = useLoad(async () => {
    const since = { seconds: BigInt(Math.floor(Date.now() / 1000) - 7 * 24 * 3600), nanos: 0 };
    const [events, ends, denied] = await Promise.all([
      policy.listAuditEvents({ since, pageSize: 500 }),
      termination.listTerminations({ since, pageSize: 500 }),
      registry.listSessions({ filter: { deniedOnly: true }, pageSize: 500 }),
    ]);
    const lines: AuditLine[] = [
      ...events.events.map((event: AuditEvent) => ({
        at: event.at,
        actor: event.actor,
        action: event.action,
        target: event.target,
        outcome: event.outcome === 2 ? `failed: ${event.detail}` : "succeeded",
      })),
      ...ends.terminations.map((item) => ({
        at: item.createdAt,
        actor: item.actor,
        action: "sessions.end",
        target: `${selectorText(item.selector)} (${reasonName(item.reason)})`,
        outcome: `${item.acknowledged}/${item.sessionCount} acknowledged${item.failed ? `, ${item.failed} failed` : ""}`,
      })),
      ...denied.sessions.map((session) => ({
        at: session.startedAt,
        actor: session.user,
        action: "admission.deny",
        target: `${session.resourceName} via ${session.gatewayId} from ${session.clientIp}`,
        outcome: `refused: ${session.endDetail}`,
      })),
    ];
    return lines.sort((a, b) => millis(b.at) - millis(a.at));
  }, [], 10_000);
  return (
    <section>
      <h1>Audit</h1>
      <p class="muted">The last 7 days: terminations, locks, policy changes and refused admissions, newest first.</p>
      {error && <p class="error">{error}</p>}
      <div class="table-wrap">
        <table>
          <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th><th>Outcome</th></tr></thead>
          <tbody>
            {data?.map((line) => (
              <tr>
                <td><Time ts={line.at} /></td>
                <td>{line.actor}</td>
                <td class="mono small">{line.action}</td>
                <td>{line.target}</td>
                <td>{line.outcome}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {data && data.length === 0 && <p class="empty muted">Nothing recorded in the last 7 days.</p>}
      </div>
    </section>
  );
}
