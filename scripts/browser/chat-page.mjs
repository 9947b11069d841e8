// Drives the chat example's page in two headless Chromium pages (Debian's /usr/bin/chromium).
//
//   node scripts/browser/chat-page.mjs http://127.0.0.1:PORT/ target/browser-chat.png
//
// Opens the page twice (two browser contexts: two separate users), waits until both sockets
// are open, types a different message in each, and checks that each page shows both
// messages. Takes a screenshot of each page. Exits 1 with a clear message on failure.
import { chromium } from "playwright-core";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

const url = process.argv[2];
const screenshot = process.argv[3] ?? "target/browser-chat.png";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_MS = 10_000;
if (!url) {
  console.error("usage: chat-page.mjs URL [SCREENSHOT.png]");
  process.exit(2);
}

const pageLog = [];
let browser;
const pages = [];
let step = "launch chromium";

async function open(name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
  const page = await context.newPage();
  page.on("console", (m) => pageLog.push(`${name} console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => pageLog.push(`${name} pageerror: ${e.message}`));
  step = `${name}: open ${url}`;
  const resp = await page.goto(url, { timeout: STEP_MS });
  if (!resp || !resp.ok()) throw new Error(`GET ${url} answered ${resp ? resp.status() : "nothing"}`);
  step = `${name}: wait for #status "open" within ${STEP_MS / 1000}s`;
  await page.waitForFunction(() => document.querySelector("#status")?.textContent === "open", null, {
    timeout: STEP_MS,
  });
  console.log(`chat-page: ok: ${name} connected`);
  pages.push({ name, page });
  return page;
}

async function say(name, page, text) {
  step = `${name}: type ${JSON.stringify(text)} and press Enter`;
  await page.fill("#msg", text);
  await page.press("#msg", "Enter");
}

async function waitForLine(name, page, text) {
  step = `${name}: wait for ${JSON.stringify(text)} in #log within ${STEP_MS / 1000}s`;
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#log > li")].some((li) => li.textContent === t),
    text,
    { timeout: STEP_MS },
  );
}

try {
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
    ],
  });
  console.log(`chat-page: chromium ${browser.version()}`);
  const alice = await open("alice");
  const bob = await open("bob");

  const suffix = randomBytes(4).toString("hex");
  const fromAlice = `hello from alice ${suffix}`;
  const fromBob = `héllo from bob ✓ ${suffix}`;
  await say("alice", alice, fromAlice);
  await say("bob", bob, fromBob);
  for (const [name, page] of [["alice", alice], ["bob", bob]]) {
    await waitForLine(name, page, fromAlice);
    await waitForLine(name, page, fromBob);
    console.log(`chat-page: ok: ${name} shows both messages`);
  }

  mkdirSync(dirname(screenshot), { recursive: true });
  for (const { name, page } of pages) {
    const path = screenshot.replace(/\.png$/, `-${name}.png`);
    step = `screenshot to ${path}`;
    await page.screenshot({ path, fullPage: true });
  }
  console.log(`chat-page: PASS (screenshots: ${screenshot.replace(/\.png$/, "-*.png")})`);
  await browser.close();
  process.exit(0);
} catch (err) {
  console.error(`chat-page: FAIL at step: ${step}`);
  console.error(`chat-page: ${String(err?.message ?? err).split("\n")[0]}`);
  for (const { name, page } of pages) {
    try {
      const status = await page.textContent("#status", { timeout: 1000 });
      const lines = await page.$$eval("#log > li", (els) => els.map((e) => e.textContent));
      console.error(`chat-page: ${name} #status = ${JSON.stringify(status)}`);
      console.error(`chat-page: ${name} #log =\n  ${lines.join("\n  ") || "(empty)"}`);
    } catch {
      // the page may be gone; the message above is what matters
    }
  }
  if (pageLog.length) console.error(`chat-page: page console:\n  ${pageLog.join("\n  ")}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
