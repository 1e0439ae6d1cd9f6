// End-to-end test of `seqcalc serve` in headless Chromium, driven by playwright-core.
//
//   node tests/browser/serve.mjs [--bin target/release/seqcalc] [--screenshots DIR]
//
// Starts `serve` on a free port with an empty runs directory, starts a tiny training from the
// form, watches the live chart gain points and the sample table fill, stops it, resumes it,
// trains a second run with attention, asks the playground a question and a bad one, and
// overlays both runs on the runs page. Prints "browser: N passed, M failed" and exits non-zero
// on failure. Needs playwright-core (NODE_PATH) and Chromium (CHROMIUM, default
// /usr/bin/chromium).

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const bin = resolve(opt("--bin", "target/release/seqcalc"));
const shots = opt("--screenshots", null);
if (shots) mkdirSync(shots, { recursive: true });

let passed = 0, failed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    throw e;
  }
}
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const work = mkdtempSync(join(tmpdir(), "seqcalc-browser-"));
const server = spawn(bin, ["serve", "--port", "0", "--runs-dir", join(work, "runs")], {
  stdio: ["ignore", "pipe", "inherit"],
});
const base = await new Promise((res, rej) => {
  const rl = createInterface({ input: server.stdout });
  rl.on("line", (l) => {
    const m = l.match(/http:\/\/[0-9.:]+/);
    if (m) res(m[0]);
  });
  server.on("exit", (c) => rej(new Error(`serve exited with ${c}`)));
  setTimeout(() => rej(new Error("serve printed no address")), 20000);
});

// A fresh profile in the temporary folder.
const browser = await chromium
  .launchPersistentContext(join(work, "profile"), {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--no-first-run", "--disable-sync", "--disable-quic",
    ],
  })
  .catch((e) => {
    server.kill("SIGKILL");
    throw e;
  });
const page = browser.pages()[0] || (await browser.newPage());
page.setDefaultTimeout(60000);
const shot = async (name) => {
  if (shots) await page.screenshot({ path: join(shots, `serve-${name}.png`), fullPage: true });
};
const points = (chart, series) =>
  page.$eval(`[data-chart="${chart}"] path[data-series="${series}"]`, (p) => Number(p.dataset.points)).catch(() => 0);
const status = () => page.$eval("#status .badge", (b) => b.dataset.status);
const waitStatus = (want) =>
  page.waitForFunction((w) => document.querySelector("#status .badge")?.dataset.status === w, want, { timeout: 120000 });

async function trainFromForm(fields, checks) {
  await page.goto(base + "/train");
  await page.waitForSelector("#train-form");
  for (const [id, v] of Object.entries(fields)) {
    if ((await page.$eval("#" + id, (e) => e.tagName)) === "SELECT") await page.selectOption("#" + id, v);
    else await page.fill("#" + id, String(v));
  }
  for (const id of checks || []) await page.check("#" + id);
}

try {
  await step("the runs page of an empty runs directory", async () => {
    await page.goto(base + "/");
    await page.waitForSelector("text=No runs yet");
  });

  await step("a training started from the form opens its live page", async () => {
    await trainFromForm({ name: "add2-lstm", digits: 2, hidden: 64, lr: 0.005, size: 3000, batch_size: 32, epochs: 500, seed: 1, cell: "lstm" });
    await shot("train");
    await Promise.all([page.waitForURL("**/runs/add2-lstm"), page.click("#train")]);
    await waitStatus("training");
  });

  await step("the live chart gains points and the sample table fills", async () => {
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="Loss"] path[data-series="validation loss"]')?.dataset.points) >= 2);
    const first = await points("Loss", "validation loss");
    await page.waitForFunction((n) => Number(document.querySelector('[data-chart="Loss"] path[data-series="validation loss"]')?.dataset.points) > n, first);
    check((await points("Loss", "validation loss")) > first, "no new points");
    check((await points("Learning rate", "learning rate")) >= 2, "no learning-rate curve");
    await page.waitForSelector("#sample-table tbody tr");
    const rows = await page.$$eval("#sample-table tbody tr", (r) => r.length);
    check(rows >= 1, "empty sample table");
    check(/examples\/s/.test(await page.textContent("#progress")), "no examples/s");
    await shot("run");
  });

  let before = 0;
  await step("Stop checkpoints the run", async () => {
    await page.click("#stop");
    await waitStatus("stopped");
    before = await points("Loss", "validation loss");
    check(await page.isDisabled("#stop"), "stop still enabled");
  });

  await step("Resume continues it, to a new epoch bound", async () => {
    await page.fill("#resume-epochs", String(before + 5));
    await page.click("#resume");
    await waitStatus("finished");
    await page.waitForFunction((n) => Number(document.querySelector('[data-chart="Loss"] path[data-series="validation loss"]')?.dataset.points) === n, before + 5);
  });

  await step("a second run with attention", async () => {
    await trainFromForm({ name: "add2-gru-attention", digits: 2, hidden: 64, lr: 0.005, size: 3000, batch_size: 32, epochs: 15, seed: 2, cell: "gru", decoder: "teacher-forced" }, ["attention"]);
    await Promise.all([page.waitForURL("**/runs/add2-gru-attention"), page.click("#train")]);
    await waitStatus("finished");
  });

  await step("the playground answers with confidences and attention", async () => {
    await page.goto(base + "/play?run=add2-gru-attention");
    await page.fill("#question", "12+34");
    await page.click("#ask");
    await page.waitForSelector("#answer .answer");
    check((await page.$$("#steps .step")).length >= 2, "no per-character confidences");
    await page.waitForSelector("#heatmap tbody tr");
    await shot("playground");
  });

  await step("the playground explains a bad question", async () => {
    await page.fill("#question", "12+x4");
    await page.click("#ask");
    await page.waitForSelector("#answer-error");
    const msg = await page.textContent("#answer-error");
    check(/x/.test(msg) && msg.length > 10, `unclear message: ${msg}`);
    await shot("playground-error");
  });

  await step("the runs page lists both and overlays their curves", async () => {
    await page.goto(base + "/");
    await page.waitForSelector('tr[data-run="add2-lstm"]');
    await page.waitForSelector('tr[data-run="add2-gru-attention"]');
    await page.check('[data-select="add2-lstm"]');
    await page.check('[data-select="add2-gru-attention"]');
    await page.click("#compare");
    await page.waitForSelector("#overlay-charts");
    const n = await page.$$eval('#overlay-charts [data-chart="Validation exact match"] path', (p) => p.length);
    check(n === 2, `expected 2 overlaid curves, got ${n}`);
    await page.click("th:has-text('best exact')");
    await shot("runs");
  });
} catch (e) {
  if (shots) await page.screenshot({ path: join(shots, "serve-failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
  server.kill("SIGINT");
  await new Promise((r) => server.on("exit", r));
  rmSync(work, { recursive: true, force: true });
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
