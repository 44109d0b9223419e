import { describe, expect, it } from "vitest";
import { applyEvent, dropLingering, EventKind, pageOf, replacePage, Selection } from "../src/table";

interface Row {
  id: string;
  status: string;
}
const row = (id: string, status = "active"): Row => ({ id, status });

describe("merging watch events", () => {
  it("updates a row in place, keeping the order", () => {
    const page = pageOf([row("a"), row("b"), row("c")]);
    const outcome = applyEvent(page, { kind: EventKind.Updated, session: row("b", "idle") });
    expect(outcome).toEqual({ changed: true, refetch: false, totalDelta: 0 });
    expect(page.order).toEqual(["a", "b", "c"]);
    expect(page.rows.get("b")?.status).toBe("idle");
  });
  it("ignores updates of sessions not on the page", () => {
    const page = pageOf([row("a")]);
    expect(applyEvent(page, { kind: EventKind.Updated, session: row("z") }).changed).toBe(false);
    expect(page.rows.has("z")).toBe(false);
  });
  it("removes an ended row and counts it", () => {
    const page = pageOf([row("a"), row("b")]);
    const outcome = applyEvent(page, { kind: EventKind.Ended, session: row("a", "disconnected") });
    expect(outcome).toEqual({ changed: true, refetch: false, totalDelta: -1 });
    expect(page.order).toEqual(["b"]);
    expect(applyEvent(page, { kind: EventKind.Ended, session: row("x") }).totalDelta).toBe(-1);
  });
  it("keeps an ended row the user follows until it is dropped", () => {
    const page = pageOf([row("a"), row("b")]);
    applyEvent(page, { kind: EventKind.Ended, session: row("a", "disconnected") }, { keep: (id) => id === "a" });
    expect(page.order).toEqual(["a", "b"]);
    expect(page.rows.get("a")?.status).toBe("disconnected");
    const reread = replacePage(page, [row("b"), row("c")]);
    expect(reread.order).toEqual(["b", "c", "a"]);
    expect(dropLingering(reread, ["a"])).toBe(true);
    expect(reread.order).toEqual(["b", "c"]);
  });
  it("asks for a re-read when a new session opens, and shows ended ones when the list does", () => {
    const page = pageOf([row("a")]);
    expect(applyEvent(page, { kind: EventKind.Opened, session: row("n") })).toEqual({
      changed: false,
      refetch: true,
      totalDelta: 1,
    });
    const ended = pageOf([row("a")]);
    const outcome = applyEvent(ended, { kind: EventKind.Ended, session: row("a", "disconnected") }, { showsEnded: true });
    expect(outcome.changed).toBe(true);
    expect(ended.rows.get("a")?.status).toBe("disconnected");
  });
  it("ignores events without a session", () => {
    const page = pageOf([row("a")]);
    expect(applyEvent(page, { kind: EventKind.SnapshotDone })).toEqual({ changed: false, refetch: false, totalDelta: 0 });
  });
});

describe("selection", () => {
  it("is kept across updates and re-reads, and forgets ended sessions", () => {
    const selection = new Selection();
    let page = pageOf([row("a"), row("b"), row("c")]);
    selection.toggle("a");
    selection.set(["b", "c"], true);
    selection.toggle("c");
    applyEvent(page, { kind: EventKind.Updated, session: row("a", "idle") });
    page = replacePage(page, [row("a"), row("b"), row("d")]);
    expect(selection.values().sort()).toEqual(["a", "b"]);
    applyEvent(page, { kind: EventKind.Ended, session: row("b") });
    selection.ended("b");
    expect(selection.values()).toEqual(["a"]);
    expect(selection.has("a")).toBe(true);
    selection.clear();
    expect(selection.size).toBe(0);
  });
});
