// Screenshots of web pages in Debian's headless Chromium, driven by playwright-core (which downloads no browser).
// Run by tests/viewers.py:  NODE_PATH=<dir of node_modules> node viewer_shots.cjs jobs.json report.json
// jobs.json: {"chromium": path, "profile": fresh user-data dir, "local_storage": {key: value} set before every page's
//             own scripts run, "jobs": [{url, out, wait_for, settle_ms, clip, click, reveal, reveal_out, texts}]}
// After the screenshot: reveal (CSS selector) is clicked, 2 s later the whole page goes to reveal_out (if given), and
// texts (CSS selectors) are read: the report gives, per selector, the visible text of every element it matches.
"use strict";
const fs = require("fs");
const { chromium } = require("playwright-core");

async function main() {
  const [jobsPath, reportPath] = process.argv.slice(2);
  const spec = JSON.parse(fs.readFileSync(jobsPath, "utf8"));
  const context = await chromium.launchPersistentContext(spec.profile, {
    executablePath: spec.chromium,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  const storage = spec.local_storage || {};
  await context.addInitScript((items) => {
    for (const [key, value] of Object.entries(items)) window.localStorage.setItem(key, value);
  }, storage);
  const report = [];
  try {
    for (const job of spec.jobs) {
      const page = await context.newPage();
      const consoleErrors = [];
      page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text().slice(0, 500)); });
      page.on("pageerror", (err) => consoleErrors.push("pageerror: " + String(err).slice(0, 500)));
      let error = null;
      const texts = {};
      try {
        const wait = job.timeout_ms || 60000;
        await page.goto(job.url, { waitUntil: "load", timeout: wait });
        if (job.wait_for) await page.waitForSelector(job.wait_for, { state: "visible", timeout: wait });
        if (job.click) await page.click(job.click, { timeout: wait });
        await page.waitForTimeout(job.settle_ms || 3000);
        const target = job.clip ? page.locator(job.clip).first() : page;
        await target.screenshot({ path: job.out, timeout: 60000 });
        if (job.reveal) {
          await page.click(job.reveal, { timeout: wait });
          await page.waitForTimeout(2000);
          if (job.reveal_out) await page.screenshot({ path: job.reveal_out, timeout: 60000 });
        }
        for (const selector of job.texts || []) {
          texts[selector] = await page.locator(selector).evaluateAll(
            (nodes) => nodes.map((n) => (n.innerText !== undefined ? n.innerText : n.textContent).trim()));
        }
      } catch (e) {
        error = String(e).slice(0, 2000);
        try { await page.screenshot({ path: job.out }); } catch (_) { /* the page is gone */ }
      }
      report.push({ ...job, error, texts, console: consoleErrors.slice(0, 40) });
      console.log(`${job.out}: ${error ? "ERROR " + error.split("\n")[0] : "ok"}`);
      await page.close();
    }
  } finally {
    await context.close();
  }
  fs.writeFileSync(reportPath, JSON.stringify(report, null, 1));
}

main().catch((e) => { console.error(e); process.exit(1); });
