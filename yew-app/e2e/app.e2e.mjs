// The web app end to end in Debian's headless Chromium, at a phone viewport with touch, against
// the real edge host, realtime hub and Redis that the Rust test (yew-app/tests/e2e.rs) starts.
//
// Usage: node app.e2e.mjs   with APP_URL (the edge), HUB_URL (the realtime hub), HUB_METRICS_URL
// (its admin listener's /metrics) and OUT_DIR (screenshots) in the environment.
// To take a server down or bring it back, this script prints `CMD <kill|start> <hub|edge>` and
// waits for the Rust side to answer `OK` on stdin.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { createInterface } from "node:readline";

const APP_URL = process.env.APP_URL;
const OUT_DIR = process.env.OUT_DIR;
const HUB_URL = process.env.HUB_URL;
const HUB_METRICS_URL = process.env.HUB_METRICS_URL;
if (!APP_URL || !OUT_DIR || !HUB_URL || !HUB_METRICS_URL) {
  throw new Error("APP_URL, HUB_URL, HUB_METRICS_URL and OUT_DIR are required");
}
mkdirSync(OUT_DIR, { recursive: true });

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

setTimeout(() => {
  console.error("e2e: timed out after 240 s");
  process.exit(2);
}, 240_000).unref();

// --- talking to the Rust harness -------------------------------------------------------------
const stdin = createInterface({ input: process.stdin });
const replies = [];
let waiting = null;
stdin.on("line", (line) => {
  if (waiting) {
    const w = waiting;
    waiting = null;
    w(line);
  } else replies.push(line);
});
async function harness(cmd) {
  console.log(`CMD ${cmd}`);
  const reply = replies.length ? replies.shift() : await new Promise((r) => (waiting = r));
  if (reply !== "OK") throw new Error(`harness refused ${cmd}: ${reply}`);
}

// --- helpers -----------------------------------------------------------------------------------
const step = (msg) => console.error(`e2e: ${msg}`);
async function until(what, fn, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// A PNG of w×h with a colour gradient, built by hand (zlib + CRC-32) so no image library is needed.
function crc32(buf) {
  let c, crc = 0xffffffff;
  for (const b of buf) {
    c = (crc ^ b) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(w, h, seed) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 255) / w;
      raw[o + 1] = (y * 255) / h;
      raw[o + 2] = (seed * 60 + ((x ^ y) & 0x3f)) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
// A PNG of pseudo-random noise, which deflate cannot shrink: a big upload from a small image.
function noisyPng(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  let x = 0x9e3779b9;
  for (let i = 0; i < raw.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    raw[i] = i % (w * 3 + 1) === 0 ? 0 : x & 0xff;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
// A 2×2 24-bit BMP: a real image in a format the server refuses (415).
function bmp() {
  const b = Buffer.alloc(54 + 16);
  b.write("BM", 0, "ascii");
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(2, 18);
  b.writeInt32LE(2, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(16, 34);
  return b;
}

const dirs = [];
async function phone(name) {
  const dir = mkdtempSync(join(tmpdir(), `likes-e2e-${name}-`));
  dirs.push(dir);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    ...PHONE,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => console.error(`e2e[${name}] page error: ${e.message}`));
  page.on("console", (m) => {
    // Refused uploads and likes are expected here; anything else is worth seeing.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) console.error(`e2e[${name}] console: ${m.text()}`);
  });
  return { context, page };
}

async function signIn(page, name) {
  await page.goto(APP_URL);
  await page.getByLabel("Your display name").fill(name);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("button", { name: "New post" }).waitFor();
}
const live = (page) =>
  until("the live badge", async () => (await page.locator(".conn").getAttribute("data-state")) === "live");
const card = (page, caption) => page.locator("article.post", { hasText: caption });
const heart = (page, caption) => card(page, caption).locator("button.heart");
async function shown(page, caption) {
  const h = heart(page, caption);
  return {
    pressed: await h.getAttribute("aria-pressed"),
    likes: Number(await card(page, caption).getByTestId("likes").textContent()),
  };
}
async function expectShown(page, caption, pressed, likes, what) {
  await until(what, async () => {
    const s = await shown(page, caption);
    return s.pressed === String(pressed) && s.likes === likes ? s : JSON.stringify(s) && false;
  });
}
async function upload(page, caption, file) {
  await page.getByRole("button", { name: "New post" }).click();
  await page.getByLabel("Choose a photo").setInputFiles(file);
  await page.getByLabel("Caption").fill(caption);
  await page.getByRole("button", { name: "Share" }).click();
}
async function imageLoaded(locator) {
  return locator.evaluate((img) => img.complete && img.naturalWidth > 0);
}

const { context: ctxA, page: a } = await phone("a");
const { context: ctxB, page: b } = await phone("b");
try {
  const tag = Date.now().toString(36);
  const first = `sunset ${tag}`;
  const second = `harbour ${tag}`;

  step("sign in on two phones");
  await signIn(a, "alice");
  await signIn(b, "bob");
  await live(a);
  await live(b);

  step("upload: preview, caption, progress, then the post on top of the feed");
  await a.getByRole("button", { name: "New post" }).click();
  await a.getByLabel("Choose a photo").setInputFiles({ name: "e2e.png", mimeType: "image/png", buffer: png(600, 400, 1) });
  await until("the preview", () => imageLoaded(a.locator("img.preview")));
  await a.getByLabel("Caption").fill(first);
  await a.screenshot({ path: join(OUT_DIR, "upload.png") });
  await a.getByRole("button", { name: "Share" }).click();
  await card(a, first).waitFor();
  const top = await a.locator("article.post").first().textContent();
  if (!top.includes(first)) throw new Error(`the new post is not on top: ${top}`);
  // The thumbnail's box has the image's aspect ratio before and after it loads.
  const frame = card(a, first).locator(".frame");
  const style = await frame.getAttribute("style");
  if (!/aspect-ratio:\s*600 \/ 400/.test(style)) throw new Error(`no reserved aspect ratio: ${style}`);
  await until("the thumbnail", () => imageLoaded(frame.locator("img")));
  await expectShown(a, first, false, 0, "a fresh post with no likes");

  step("the other phone gets a '1 new post' pill, which shows the post");
  const pill = b.getByRole("button", { name: /1 new post/ });
  await pill.waitFor({ timeout: 10_000 });
  await pill.click();
  await card(b, first).waitFor();
  await expectShown(b, first, false, 0, "bob sees the post with no likes");

  step("like → 1 on both phones, live");
  await heart(a, first).click();
  await expectShown(a, first, true, 1, "alice's heart on, count 1");
  const likedBy = await card(a, first).getByTestId("liked-by").textContent();
  if (likedBy !== "liked by you") throw new Error(`liked-by line: ${likedBy}`);
  await expectShown(b, first, false, 1, "bob sees 1 without reloading");

  step("unlike → 0 on both");
  await heart(a, first).click();
  await expectShown(a, first, false, 0, "alice's heart off, count 0");
  await expectShown(b, first, false, 0, "bob sees 0");

  step("double tap likes");
  await card(b, first).locator(".frame").dblclick();
  await expectShown(b, first, true, 1, "bob's double tap liked it");
  await expectShown(a, first, false, 1, "alice sees bob's like");
  // A second double tap never unlikes.
  await card(b, first).locator(".frame").dblclick();
  await new Promise((r) => setTimeout(r, 500));
  await expectShown(b, first, true, 1, "a double tap on a liked post keeps it liked");

  step("a single tap opens the full image");
  await card(a, first).locator(".frame").click();
  const viewer = a.getByRole("dialog", { name: "Full image" });
  await viewer.waitFor();
  const full = await viewer.locator("img").getAttribute("src");
  if (!full.includes("size=full")) throw new Error(`viewer shows ${full}`);
  await until("the full image", () => imageLoaded(viewer.locator("img")));
  await viewer.getByRole("button", { name: "Close" }).click();
  await viewer.waitFor({ state: "detached" });

  step("reload keeps the session and the liked state");
  await b.reload();
  await card(b, first).waitFor();
  await expectShown(b, first, true, 1, "bob's like survives a reload");
  await a.reload();
  await card(a, first).waitFor();
  await expectShown(a, first, false, 1, "alice still signed in, not liking");
  await live(a);
  await live(b);

  step("top tab orders by likes");
  await upload(b, second, { name: "two.png", mimeType: "image/png", buffer: png(400, 600, 2) });
  await card(b, second).waitFor();
  await a.getByRole("button", { name: /1 new post/ }).click();
  await card(a, second).waitFor();
  await b.getByRole("tab", { name: "Top" }).click();
  await until("top order", async () => {
    const captions = await b.locator("article.post .caption").allTextContents();
    return captions.length >= 2 && captions[0].includes(first) ? captions : false;
  });
  await b.getByRole("tab", { name: "New" }).click();
  await card(b, second).waitFor();

  step("a failed like rolls back with a toast (the edge is down)");
  await harness("kill edge");
  await heart(a, first).click();
  const toast = a.locator(".toast", { hasText: "Couldn't like" });
  await toast.waitFor({ timeout: 10_000 });
  await expectShown(a, first, false, 1, "alice's heart rolled back");
  await harness("start edge");

  step("the hub goes away and comes back: reconnecting, then live with fresh counts");
  await harness("kill hub");
  await until("the reconnecting badge", async () => (await a.locator(".conn").getAttribute("data-state")) === "reconnecting");
  // A like nobody hears about live while the hub is down.
  await heart(b, second).click();
  await expectShown(b, second, true, 1, "bob liked the second post");
  // And a post whose `posts:created` nobody hears.
  const third = `meadow ${tag}`;
  await upload(b, third, { name: "three.png", mimeType: "image/png", buffer: png(500, 500, 3) });
  await card(b, third).waitFor();
  await harness("start hub");
  await live(a);
  await card(a, second).waitFor();
  await expectShown(a, second, false, 1, "alice's count refreshed after the reconnect");
  step("the post missed while the hub was down arrives behind the pill");
  await a.getByRole("button", { name: /1 new post/ }).click();
  await card(a, third).waitFor();
  await heart(a, second).click();
  await expectShown(b, second, true, 2, "live again: bob sees alice's like");

  step("screenshot of the feed (toasts dismiss themselves)");
  await a.locator(".toast").first().waitFor({ state: "detached", timeout: 10_000 });
  await a.evaluate(() => window.scrollTo(0, 0));
  await until("thumbnails", () => imageLoaded(card(a, third).locator(".frame img")));
  await a.screenshot({ path: join(OUT_DIR, "feed.png") });

  step("upload errors in words: 415 and 422");
  await a.getByRole("button", { name: "New post" }).click();
  await a.getByLabel("Choose a photo").setInputFiles({ name: "x.bmp", mimeType: "image/bmp", buffer: bmp() });
  await a.getByRole("button", { name: "Share" }).click();
  await a.getByRole("alert").filter({ hasText: "format isn't supported" }).waitFor();
  await a.getByLabel("Choose a photo").setInputFiles({ name: "x.png", mimeType: "image/png", buffer: Buffer.from("not an image at all") });
  await a.getByRole("button", { name: "Share" }).click();
  await a.getByRole("alert").filter({ hasText: "isn't an image we can use" }).waitFor();

  step("upload errors in words: 413 (11 MiB, answered while the browser is still sending)");
  await a.getByLabel("Choose a photo").setInputFiles({ name: "big.png", mimeType: "image/png", buffer: Buffer.alloc(11 << 20, 7) });
  await a.getByRole("button", { name: "Share" }).click();
  await a.getByRole("alert").filter({ hasText: "too large" }).waitFor();

  step("upload errors in words: 429 once the per-minute budget is spent");
  const statuses = await a.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem("likes.session"));
    const seen = [];
    for (let i = 0; i < 40 && !seen.includes(429); i++) {
      const form = new FormData();
      form.append("image", new Blob(["junk"]), "junk.png");
      const r = await fetch("/api/posts", { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form });
      seen.push(r.status);
    }
    return seen;
  });
  if (statuses.at(-1) !== 429) throw new Error(`never rate limited: ${statuses}`);
  await a.getByLabel("Choose a photo").setInputFiles({ name: "ok.png", mimeType: "image/png", buffer: png(64, 64, 4) });
  await a.getByRole("button", { name: "Share" }).click();
  await a.getByRole("alert").filter({ hasText: "posting too fast" }).waitFor();
  await a.getByRole("button", { name: "Cancel" }).click();

  step("the progress bar moves on a slow uplink");
  const cdp = await ctxB.newCDPSession(b);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 512 * 1024 });
  await b.getByRole("button", { name: "New post" }).click();
  // A 600×600 PNG of noise (about 1 MB): two seconds at 512 KB/s.
  await b.getByLabel("Choose a photo").setInputFiles({ name: "noise.png", mimeType: "image/png", buffer: noisyPng(600, 600) });
  await b.getByLabel("Caption").fill(`slow ${tag}`);
  await b.getByRole("button", { name: "Share" }).click();
  const midway = await until("a partly filled progress bar", async () => {
    const v = await b.locator("progress").getAttribute("value", { timeout: 200 });
    return Number(v) > 0 && Number(v) < 1 ? Number(v) : false;
  });
  step(`progress seen at ${Math.round(midway * 100)}%`);
  await card(b, `slow ${tag}`).waitFor({ timeout: 30_000 });
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  step("infinite scroll over the cursor API");
  const seed = await (await fetch(new URL("/api/session", APP_URL), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "seed" }),
  })).json();
  // Tall images make tall cards, so the first page does not reach the end of the list.
  for (let i = 0; i < 14; i++) {
    const form = new FormData();
    form.append("image", new Blob([png(30, 60 + i, i)], { type: "image/png" }), "s.png");
    form.append("caption", `seeded ${i} ${tag}`);
    const r = await fetch(new URL("/api/posts", APP_URL), { method: "POST", headers: { authorization: `Bearer ${seed.token}` }, body: form });
    if (r.status !== 201) throw new Error(`seeding answered ${r.status}: ${await r.text()}`);
  }
  await b.reload();
  await card(b, `seeded 13 ${tag}`).waitFor();
  const firstPage = await b.locator("article.post").count();
  if (firstPage >= 18) throw new Error(`expected a first page, got ${firstPage} posts`);
  await until("every post after scrolling", async () => {
    await b.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    return (await b.locator("article.post").count()) === 18;
  }, 20_000);
  await b.getByText("You're all caught up.").waitFor();
  const ids = await b.locator("article.post").evaluateAll((els) => els.map((e) => e.dataset.post));
  if (new Set(ids).size !== ids.length) throw new Error(`repeated posts: ${ids}`);

  step("only posts in view are subscribed: cards that scrolled away were unsubscribed");
  // The hub's room gauge counts posts with at least one subscriber, over both phones.
  const rooms = await until("few rooms", async () => {
    const text = await (await fetch(HUB_METRICS_URL)).text();
    const n = Number(/^realtime_hub_rooms (\d+)/m.exec(text)?.[1]);
    return n > 0 && n <= 8 ? n : false;
  });
  step(`${rooms} rooms for ${ids.length} posts scrolled through`);
  await a.getByRole("button", { name: /new posts/ }).click();

  await a.evaluate(() => window.scrollTo(0, 0));

  step("dark mode and reduced motion follow the system");
  await a.emulateMedia({ colorScheme: "dark", reducedMotion: "reduce" });
  const look = await a.evaluate(() => ({
    bg: getComputedStyle(document.body).backgroundColor,
    transition: getComputedStyle(document.querySelector(".heart svg")).transitionDuration,
  }));
  if (look.bg !== "rgb(0, 0, 0)" || look.transition !== "0s") throw new Error(`dark/reduced: ${JSON.stringify(look)}`);
  await a.screenshot({ path: join(OUT_DIR, "feed-dark.png") });
  await a.emulateMedia({ colorScheme: "light", reducedMotion: "no-preference" });

  step("the load lab is disabled while the server has no lab_url");
  if (await a.getByRole("button", { name: "Lab", exact: true }).count()) throw new Error("a Lab link without a lab");
  await a.goto(new URL("/lab", APP_URL).href);
  await a.getByText("The load lab is disabled on this server.").waitFor();

  step("the load lab: a tiny run plots live and ends with a verdict");
  await harness("start lab");
  await a.goto(APP_URL);
  await a.getByRole("button", { name: "Lab", exact: true }).click();
  await until("the /lab address", async () => new URL(a.url()).pathname === "/lab");
  await a.getByText("connected", { exact: true }).waitFor();
  await a.getByLabel("Users", { exact: true }).fill("20");
  await a.getByLabel("Posts", { exact: true }).fill("5");
  await a.getByLabel("Rate (req/s)").fill("20");
  await a.getByLabel("Duration (s)").fill("2");
  await a.getByRole("button", { name: "Start" }).click();
  await a.getByRole("button", { name: "Stop" }).waitFor();
  await until("a plotted tick", async () => Number(await a.locator(".plots").getAttribute("data-ticks", { timeout: 200 })) > 0, 30_000);
  const points = await a.locator(".plot polyline.line").first().getAttribute("points");
  if (!/^\d+\.\d,\d+\.\d/.test(points)) throw new Error(`throughput line: ${points}`);
  const verdict = await until("the verdict", async () =>
    (await a.getByTestId("verdict").count()) ? a.getByTestId("verdict").textContent() : false, 60_000);
  const line = await a.getByTestId("verdict-line").textContent();
  // The generator, Redis and PostgreSQL (after the sync daemon drained) agree exactly.
  const counts = /expected (\d+) likes, Redis (\d+), PostgreSQL (\d+)/.exec(line);
  if (verdict !== "PASS" || !counts || counts[1] !== counts[2] || counts[2] !== counts[3] || counts[1] === "0") {
    throw new Error(`verdict ${verdict}: ${line}`);
  }
  await a.screenshot({ path: join(OUT_DIR, "lab.png"), fullPage: true });

  step("a page on another origin can neither read the lab key nor reach the lab");
  const config = await (await fetch(new URL("/api/config", APP_URL))).json();
  if (!config.lab_url || !config.lab_key) throw new Error(`/api/config: ${JSON.stringify(config)}`);
  const foreign = await ctxB.newPage();
  // The same server under another name is another origin, as a page on any other site would be.
  const elsewhere = new URL("/api/health", APP_URL);
  elsewhere.hostname = "localhost";
  await foreign.goto(elsewhere.href);
  const reach = await foreign.evaluate(async ({ app, lab }) => {
    const blocked = () => "blocked";
    const read = await fetch(new URL("/api/config", app)).then((r) => r.json()).then(() => "read", blocked);
    const ws = await new Promise((resolve) => {
      const s = new WebSocket(`${lab.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
      s.onopen = () => { s.close(); resolve("open"); };
      s.onerror = () => resolve("refused");
    });
    const poll = await fetch(`${lab}/socket.io/?EIO=4&transport=polling`).then((r) => r.status, blocked);
    return { read, ws, poll };
  }, { app: APP_URL, lab: config.lab_url });
  if (reach.read !== "blocked" || reach.ws !== "refused" || reach.poll !== "blocked") {
    throw new Error(`a foreign page reached the lab: ${JSON.stringify(reach)}`);
  }
  await foreign.close();

  step("another page opened later finds the verdict; Back returns to the feed");
  await b.goto(new URL("/lab", APP_URL).href);
  await b.getByTestId("verdict").waitFor();
  await b.goBack();
  await b.getByRole("button", { name: "New post", exact: true }).waitFor();
  await a.getByRole("button", { name: "← Feed" }).click();
  await a.getByRole("button", { name: "New post", exact: true }).waitFor();
  if (new URL(a.url()).pathname !== "/") throw new Error(`the feed at ${a.url()}`);

  step("sign out");
  await a.getByRole("button", { name: /Sign out/ }).click();
  await a.getByLabel("Your display name").waitFor();
  await a.reload();
  await a.getByLabel("Your display name").waitFor();

  console.log("PASS");
} finally {
  await ctxA.close().catch(() => {});
  await ctxB.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  stdin.close();
}
