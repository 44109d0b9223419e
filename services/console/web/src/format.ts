// Formatting shared by every view. Pure functions: unit-tested in test/format.test.ts.

/** "32m", "2h 30m", "2d 4h" — the portal's duration format. Under a minute: "45s". */
export function formatDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
  const days = Math.floor(hours / 24);
  return `${days}d ${hours % 24}h`;
}

/** Seconds from `startMs` to `nowMs` (never negative). */
export function elapsedSeconds(startMs: number, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - startMs) / 1000));
}

export interface LocationLike {
  city: string;
  countryCode: string;
  kind: number;
}

/** "Mexico City, MX"; "Private network", "Unknown", "Location unavailable" otherwise. */
export function formatLocation(location: LocationLike | undefined): string {
  if (!location) return "Unknown";
  switch (location.kind) {
    case 2:
      return "Private network";
    case 4:
      return "Location unavailable";
  }
  if (location.city && location.countryCode) return `${location.city}, ${location.countryCode}`;
  if (location.countryCode) return location.countryCode;
  return "Unknown";
}

/** Local time for the table ("14:05" today, "3 Dec 14:05" before). */
export function formatClock(ms: number, nowMs: number = Date.now(), timeZone?: string): string {
  const date = new Date(ms);
  const sameDay = new Date(nowMs).toDateString() === date.toDateString();
  const options: Intl.DateTimeFormatOptions = sameDay
    ? { hour: "2-digit", minute: "2-digit", timeZone }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone };
  return new Intl.DateTimeFormat(undefined, options).format(date);
}

/** The UTC form shown on hover. */
export function formatUtc(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** 1234567 → "1.2 MB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
