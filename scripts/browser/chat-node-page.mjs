// Drives `ferrosocket chat`'s page on two nodes in headless Chromium (Debian's /usr/bin/chromium),
// for `cargo xtask chat-browser`:
//
//   node scripts/browser/chat-node-page.mjs http://127.0.0.1:P1/ http://127.0.0.1:P2/ target/chat-browser-redis.png
//
// 1. alice opens node one's page and bob node two's (room "lobby"); a line typed in each
//    page's input must appear in the other page's list (bounded retries while the nodes'
//    backplanes subscribe) and in its own;
// 2. carol opens node two's page later: its list must show both lines as history;
// 3. prints "chat-node-page: restart the broker now" and waits for a line "go" on stdin (the
//    xtask restarts the broker meanwhile), then types lines in alice's page until one appears
//    in bob's (bounded retries), and the same from bob to alice.
// Takes a screenshot of each page. Exits 1 with the failing step and each page's list.
import { chromium } from "playwright-core";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";

const [urlOne, urlTwo, screenshot = "target/chat-browser.png"] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_MS = 10_000;
const RETRY_MS = 2_000;
const RETRIES = 20;
if (!urlOne || !urlTwo) {
  console.error("usage: chat-node-page.mjs NODE1_URL NODE2_URL [SCREENSHOT.png]");
  process.exit(2);
}

const pageLog = [];
const pages = [];
let browser;
let step = "launch chromium";
const ok = (what) => console.log(`chat-node-page: ok: ${what}`);

async function open(name, base) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await context.newPage();
  page.on("console", (m) => pageLog.push(`${name} console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => pageLog.push(`${name} pageerror: ${e.message}`));
  const url = `${base}?room=lobby&name=${name}`;
  step = `${name}: open ${url}`;
  const resp = await page.goto(url, { timeout: STEP_MS });
  if (!resp || !resp.ok()) throw new Error(`GET ${url} answered ${resp ? resp.status() : "nothing"}`);
  step = `${name}: wait for #status to be open within ${STEP_MS / 1000}s`;
  await page.waitForFunction(() => document.querySelector("#status")?.className === "open", null, {
    timeout: STEP_MS,
  });
  ok(`${name} joined lobby on ${base}`);
  pages.push({ name, page });
  return page;
}

async function say(name, page, text) {
  step = `${name}: type ${JSON.stringify(text)} and press Enter`;
  await page.fill("#msg", text);
  await page.press("#msg", "Enter");
}

/// Waits until `page`'s list has a line `from: text` (of class `cls` if given).
async function shows(name, page, from, text, cls, ms = STEP_MS) {
  step = `${name}: wait for ${from}'s ${JSON.stringify(text)} in the list within ${ms / 1000}s`;
  await page.waitForFunction(
    ([from, text, cls]) =>
      [...document.querySelectorAll("#log > li")].some(
        (li) =>
          (!cls || li.classList.contains(cls)) &&
          li.querySelector(".name")?.textContent === from &&
          li.querySelector(".text")?.textContent === text,
      ),
    [from, text, cls],
    { timeout: ms },
  );
}

/// Types numbered lines in `fromPage` until one of them shows in `toPage` (bounded: a node's
/// backplane subscribes in the background, and resubscribes after a broker restart); returns
/// the line that crossed.
async function crosses(fromName, fromPage, toName, toPage, prefix, when) {
  for (let i = 0; i < RETRIES; i++) {
    const text = `${prefix} ${i}`;
    await say(fromName, fromPage, text);
    try {
      await shows(toName, toPage, fromName, text, "message", RETRY_MS);
      ok(`${fromName}'s line ${when} reached ${toName} on the other node (attempt ${i + 1})`);
      return text;
    } catch {
      // The backplane may still be reconnecting: try again.
    }
  }
  step = `${fromName} -> ${toName} ${when}`;
  throw new Error(`none of ${RETRIES} lines typed by ${fromName} reached ${toName} in ${(RETRIES * RETRY_MS) / 1000}s`);
}

function waitForGo() {
  step = "wait for the xtask to restart the broker (stdin 'go')";
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin });
    rl.on("line", (l) => {
      if (l.trim() === "go") {
        resolve(); // before close(), whose "close" event would reject
        rl.close();
      }
    });
    rl.on("close", () => reject(new Error("stdin closed before 'go'")));
  });
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
  console.log(`chat-node-page: chromium ${browser.version()}`);
  const alice = await open("alice", urlOne);
  const bob = await open("bob", urlTwo);

  const suffix = randomBytes(4).toString("hex");
  const fromAlice = await crosses("alice", alice, "bob", bob, `hello from alice <b>${suffix}</b>`, "at first");
  await shows("alice", alice, "alice", fromAlice, "message");
  const fromBob = await crosses("bob", bob, "alice", alice, `héllo from bob ✓ ${suffix}`, "at first");
  await shows("bob", bob, "bob", fromBob, "message");
  ok("each page shows its own line too");

  const carol = await open("carol", urlTwo);
  await shows("carol", carol, "alice", fromAlice, "history");
  await shows("carol", carol, "bob", fromBob, "history");
  ok("carol, who joined later, sees both lines as history");

  console.log("chat-node-page: restart the broker now");
  await waitForGo();
  await crosses("alice", alice, "bob", bob, `after restart ${suffix} a`, "after the broker restart");
  await crosses("bob", bob, "alice", alice, `after restart ${suffix} b`, "after the broker restart");

  mkdirSync(dirname(screenshot), { recursive: true });
  for (const { name, page } of pages) {
    const path = screenshot.replace(/\.png$/, `-${name}.png`);
    step = `screenshot to ${path}`;
    await page.screenshot({ path, fullPage: true });
  }
  console.log(`chat-node-page: PASS (screenshots: ${screenshot.replace(/\.png$/, "-*.png")})`);
  await browser.close();
  process.exit(0);
} catch (err) {
  console.error(`chat-node-page: FAIL at step: ${step}`);
  console.error(`chat-node-page: ${String(err?.message ?? err).split("\n")[0]}`);
  for (const { name, page } of pages) {
    try {
      const status = await page.textContent("#status", { timeout: 1000 });
      const lines = await page.$$eval("#log > li", (els) => els.map((e) => `[${e.className}] ${e.textContent}`));
      console.error(`chat-node-page: ${name} #status = ${JSON.stringify(status)}`);
      console.error(`chat-node-page: ${name} #log =\n  ${lines.join("\n  ") || "(empty)"}`);
    } catch {
      // the page may be gone; the message above is what matters
    }
  }
  if (pageLog.length) console.error(`chat-node-page: page console:\n  ${pageLog.join("\n  ")}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
