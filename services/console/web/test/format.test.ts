import { describe, expect, it } from "vitest";
import { elapsedSeconds, formatDuration, formatLocation, formatUtc } from "../src/format";

describe("formatDuration", () => {
  it("writes the portal's formats", () => {
    expect(formatDuration(32 * 60)).toBe("32m");
    expect(formatDuration(2.5 * 3600)).toBe("2h 30m");
    expect(formatDuration(3600 + 5 * 60)).toBe("1h 05m");
    expect(formatDuration((2 * 24 + 4) * 3600 + 59)).toBe("2d 4h");
  });
  it("handles the edges", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(59.9)).toBe("59s");
    expect(formatDuration(60)).toBe("1m");
    expect(formatDuration(3599)).toBe("59m");
    expect(formatDuration(3600)).toBe("1h 00m");
    expect(formatDuration(24 * 3600 - 1)).toBe("23h 59m");
    expect(formatDuration(24 * 3600)).toBe("1d 0h");
    expect(formatDuration(-5)).toBe("0s");
  });
  it("ticks from the start time", () => {
    const start = Date.UTC(2026, 0, 1, 12, 0, 0);
    expect(formatDuration(elapsedSeconds(start, start + 32 * 60_000 + 999))).toBe("32m");
    expect(elapsedSeconds(start, start - 1000)).toBe(0);
  });
});

describe("formatLocation", () => {
  it("says City, CC", () => {
    expect(formatLocation({ city: "Mexico City", countryCode: "MX", kind: 1 })).toBe("Mexico City, MX");
    expect(formatLocation({ city: "", countryCode: "DE", kind: 1 })).toBe("DE");
    expect(formatLocation({ city: "", countryCode: "", kind: 2 })).toBe("Private network");
    expect(formatLocation({ city: "", countryCode: "", kind: 4 })).toBe("Location unavailable");
    expect(formatLocation(undefined)).toBe("Unknown");
  });
  it("shows UTC on hover", () => {
    expect(formatUtc(Date.UTC(2026, 11, 6, 23, 5, 7, 123))).toBe("2026-12-06 23:05:07 UTC");
  });
});
