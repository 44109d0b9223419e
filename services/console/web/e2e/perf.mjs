// A benchmark, not a test: first meaningful paint and long frames with many live sessions.
// Usage: node e2e/perf.mjs <base URL> <token>   (against a `vigil run` with a large simulation, e.g.
//   VIGIL_SIMULATION__GATEWAYS=20 VIGIL_SIMULATION__SESSIONS_PER_GATEWAY=5000 vigil run;
//   the token: vigil-data/admin.token)
import { chromium } from "playwright-core";

const base = process.argv[2];
const token = process.argv[3];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
await page.goto(base + "/");
await page.evaluate((value) => sessionStorage.setItem("vigil.token", value), token);
const paints = [];
for (let i = 0; i < 5; i++) {
  const started = Date.now();
  await page.goto(base + "/");
  await page.waitForSelector('[data-testid="session-row"]');
  await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="card-active"]')?.textContent ?? ""));
  paints.push(Date.now() - started);
}
const rows = await page.locator('[data-testid="session-row"]').count();
const total = await page.locator('[data-testid="total"]').innerText();
const active = await page.locator('[data-testid="card-active"]').innerText();
// Long frames while the feed streams: every task over 50 ms, for 10 s.
const longTasks = await page.evaluate(
  () =>
    new Promise((resolve) => {
      const seen = [];
      const observer = new PerformanceObserver((list) => list.getEntries().forEach((entry) => seen.push(Math.round(entry.duration))));
      observer.observe({ type: "longtask", buffered: false });
      let frames = 0;
      let worst = 0;
      let last = performance.now();
      const tick = (now) => {
        worst = Math.max(worst, now - last);
        last = now;
        frames++;
        if (now - start < 10_000) requestAnimationFrame(tick);
        else {
          observer.disconnect();
          resolve({ longTasks: seen, frames, worstFrameMs: Math.round(worst) });
        }
      };
      const start = performance.now();
      requestAnimationFrame(tick);
    }),
);
// Events received by a watcher in the same 10 s, to say how busy the feed was.
const { longTasks: tasks, ...frames } = longTasks;
console.log(
  JSON.stringify({
    firstMeaningfulPaintMs: paints,
    rowsOnPage: rows,
    total,
    active: active.replace(/\s+/g, " "),
    ...frames,
    longTasksOver50ms: tasks.length,
    longestTaskMs: Math.max(0, ...tasks),
    tasksOver100ms: tasks.filter((ms) => ms > 100).length,
  }),
);
await page.screenshot({ path: "e2e/artifacts/perf.png" });
await browser.close();
