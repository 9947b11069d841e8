// Drives the ferrosocket echo page in headless Chromium (Debian's /usr/bin/chromium).
//
//   node scripts/browser/echo-page.mjs http://127.0.0.1:PORT/ target/browser-echo.png
//
// Opens the page, waits for the WebSocket to be open, sends an ASCII and a non-ASCII
// message (button click, then Enter), checks both come back as "received: ...", checks
// the reconnect button, and takes a screenshot. Exits 1 with a clear message on failure.
//
// An https:// URL is loaded with certificate errors ignored (the certificate is made at test
// time). EXTRA_SOCKETS=N then opens N more WebSockets from the page, all at once, and echoes a
// message on each: over HTTP/2 they are streams of the connection that carried the page.
import { chromium } from "playwright-core";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

const url = process.argv[2];
const screenshot = process.argv[3] ?? "target/browser-echo.png";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_MS = 10_000;
if (!url) {
  console.error("usage: echo-page.mjs URL [SCREENSHOT.png]");
  process.exit(2);
}

const pageLog = [];
let browser;
let page;
let step = "launch chromium";

async function waitForStatus(want) {
  await page.waitForFunction(
    (w) => (document.querySelector("#status")?.textContent ?? "").includes(w),
    want,
    { timeout: STEP_MS },
  );
}

async function waitForLog(line) {
  await page.waitForFunction(
    (l) => [...document.querySelectorAll("#log > *")].some((e) => (e.textContent ?? "").includes(l)),
    line,
    { timeout: STEP_MS },
  );
}

async function echo(message, how) {
  step = `send ${JSON.stringify(message)} (${how})`;
  await page.fill("#msg", message);
  if (how === "click") await page.click("#send", { timeout: STEP_MS });
  else await page.press("#msg", "Enter");
  step = `wait for "sent: ${message}" in #log`;
  await waitForLog(`sent: ${message}`);
  step = `wait for "received: ${message}" in #log within ${STEP_MS / 1000}s`;
  await waitForLog(`received: ${message}`);
  console.log(`echo-page: ok: ${JSON.stringify(message)} echoed (${how})`);
}

try {
  // launch() gives Chromium a fresh temporary profile (user-data-dir), removed on close.
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 30_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      ...(url.startsWith("https:") ? ["--ignore-certificate-errors"] : []),
    ],
  });
  console.log(`echo-page: chromium ${browser.version()}`);
  page = await browser.newPage({
    viewport: { width: 900, height: 600 },
    ignoreHTTPSErrors: url.startsWith("https:"),
  });
  page.on("console", (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => pageLog.push(`pageerror: ${e.message}`));

  step = `open ${url}`;
  const resp = await page.goto(url, { timeout: STEP_MS });
  if (!resp || !resp.ok()) throw new Error(`GET ${url} answered ${resp ? resp.status() : "nothing"}`);
  step = `wait for #status to contain "open" within ${STEP_MS / 1000}s`;
  await waitForStatus("open");
  console.log("echo-page: ok: websocket open");
  if (process.env.EXPECT_COMPRESSION !== "0") {
    step = "check that Chromium negotiated permessage-deflate";
    const status = await page.textContent("#status");
    if (!status.includes("permessage-deflate")) throw new Error(`no compression negotiated: #status = ${JSON.stringify(status)}`);
    console.log(`echo-page: ok: compression negotiated: ${status}`);
  }

  const suffix = randomBytes(4).toString("hex");
  await echo(`hello ferrosocket ${suffix}`, "click");
  await echo(`héllo ✓ 🦀 ${suffix}`, "Enter");
  // Long enough to be compressed both ways; sent twice so the second one uses the context
  // both compressors kept from the first (context takeover).
  const long = `${"the quick brown fox jumps over the lazy dog ".repeat(8)}${suffix}`;
  await echo(long, "click");
  await echo(`${long} again`, "click");

  step = "reconnect";
  await page.click("#reconnect", { timeout: STEP_MS });
  step = `wait for #status to contain "open" after reconnect within ${STEP_MS / 1000}s`;
  await waitForStatus("open");
  await echo(`again ${suffix}`, "click");

  const extra = Number(process.env.EXTRA_SOCKETS ?? "0");
  if (extra > 0) {
    step = `open ${extra} more WebSockets from the page and echo on each`;
    const echoed = await page.evaluate(
      async ([n, tag]) => {
        const target = new URL("ws", location.href.replace(/^http/, "ws")).href;
        const one = (i) =>
          new Promise((resolve, reject) => {
            const ws = new WebSocket(target);
            const timer = setTimeout(() => reject(new Error(`socket ${i}: no echo in time`)), 10_000);
            ws.onopen = () => ws.send(`extra ${i} ${tag}`);
            ws.onmessage = (e) => {
              clearTimeout(timer);
              ws.close(1000, "done");
              resolve(e.data);
            };
            ws.onerror = () => reject(new Error(`socket ${i}: error`));
          });
        return Promise.all([...Array(n).keys()].map(one));
      },
      [extra, suffix],
    );
    for (let i = 0; i < extra; i++) {
      if (echoed[i] !== `extra ${i} ${suffix}`) throw new Error(`socket ${i} echoed ${JSON.stringify(echoed[i])}`);
    }
    console.log(`echo-page: ok: ${extra} more WebSockets echoed at once`);
  }

  step = `screenshot to ${screenshot}`;
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`echo-page: PASS (screenshot: ${screenshot})`);
  await browser.close();
  process.exit(0);
} catch (err) {
  console.error(`echo-page: FAIL at step: ${step}`);
  console.error(`echo-page: ${String(err?.message ?? err).split("\n")[0]}`);
  if (page) {
    try {
      const status = await page.textContent("#status", { timeout: 1000 });
      const lines = await page.$$eval("#log > *", (els) => els.map((e) => e.textContent));
      console.error(`echo-page: #status = ${JSON.stringify(status)}`);
      console.error(`echo-page: #log =\n  ${lines.join("\n  ") || "(empty)"}`);
      const failShot = screenshot.replace(/\.png$/, "") + "-failure.png";
      mkdirSync(dirname(failShot), { recursive: true });
      await page.screenshot({ path: failShot, fullPage: true });
      console.error(`echo-page: failure screenshot: ${failShot}`);
    } catch {
      // the page may be gone; the message above is what matters
    }
  }
  if (pageLog.length) console.error(`echo-page: page console:\n  ${pageLog.join("\n  ")}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
