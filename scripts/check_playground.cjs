// The playground in a real headless browser: Debian's chromium, driven over the Chrome
// DevTools Protocol by playwright-core (no bundled browser). Opens the page a running
// `fmlab serve` serves at /, sends a chat message, waits for the streamed answer, checks
// the token view (every generated token shaded, its alternatives shown on hover), switches
// to the raw completion view and back, and saves a screenshot.
//
//   node scripts/check_playground.cjs http://127.0.0.1:PORT/ out.png
//
// (scripts/check_serve.sh starts the server and runs this.)
"use strict";

const path = require("path");
const { chromium } = require(process.env.PLAYWRIGHT_CORE ||
  path.join(process.env.HOME, ".cache/fmlab/node/node_modules/playwright-core"));

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node scripts/check_playground.cjs URL SCREENSHOT.png");
  process.exit(2);
}

function check(ok, what) {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) process.exitCode = 1;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("model").textContent !== "…");
    const model = await page.textContent("#model");
    check(model && model !== "(no model list)", `the page names the model: ${model}`);

    // Greedy, so the answer is the same every run.
    await page.fill("#temperature", "0");
    await page.dispatchEvent("#temperature", "input");
    await page.fill("#max_tokens", "24");
    await page.fill("#input", "Name three colours of the rainbow.");
    await page.click("#send");
    await page.waitForSelector(".msg.assistant.done", { timeout: 120000 });
    const tokens = await page.$$eval(".msg.assistant .tok", (ts) => ts.map((t) => ({
      text: t.textContent, lp: +t.dataset.lp, alts: JSON.parse(t.dataset.alts), bg: t.style.background,
    })));
    check(tokens.length > 0, `the streamed answer shows ${tokens.length} token(s)`);
    check(tokens.every((t) => t.lp <= 0 && t.bg.startsWith("rgb")), "every token is shaded by its probability");
    check(tokens.every((t) => t.alts.length === 5), "every token carries its 5 alternatives");
    // Greedy: the chosen token is the most likely alternative.
    check(tokens.every((t) => Math.max(...t.alts.map((a) => a.logprob)) >= t.lp - 1e-6),
      "greedy tokens are their top alternative");
    const answer = await page.$eval(".msg.assistant .body", (b) => b.textContent);
    check(answer.length > 0, `answer: ${JSON.stringify(answer)}`);
    const stats = await page.textContent(".msg.assistant .stats");
    check(/tokens in/.test(stats), `stats line: ${stats}`);

    await page.hover(".msg.assistant .tok >> nth=1");
    const popup = await page.$eval("#alts", (a) => ({ shown: a.style.display, rows: a.querySelectorAll("tr").length }));
    check(popup.shown === "block" && popup.rows === 5, "hovering a token shows its alternatives");
    await page.screenshot({ path: screenshot });
    console.log(`screenshot: ${screenshot}`);

    await page.click("#tab-raw");
    await page.fill("#prompt", "The capital of France is");
    await page.fill("#max_tokens", "6");
    await page.click("#rawsend");
    await page.waitForFunction(() => !document.getElementById("rawsend").disabled &&
      document.querySelectorAll("#rawout .tok").length > 0, null, { timeout: 120000 });
    const raw = await page.$eval("#rawout", (o) => o.textContent);
    check(raw.startsWith("The capital of France is Paris"), `completion view: ${JSON.stringify(raw)}`);
    await page.click("#tab-chat");
    check(await page.isVisible("#log"), "back to the chat view");
    check(errors.length === 0, `no script errors ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
