// Drives the Aorta console in headless Chromium. Run by crates/aorta/tests/console_e2e.rs,
// which starts `aorta serve` with configs/sepsis.toml and passes:
//   AORTA_BASE (http://127.0.0.1:port), AORTA_TOKEN (admin), AORTA_MLLP (host:port),
//   AORTA_SHOTS (directory for screenshots), CHROMIUM (executable; default /usr/bin/chromium),
//   AORTA_ELR_MLLP (the ELR listener) and AORTA_ELR_MESSAGES (a JSON array of ORU^R01 lab reports).
// Prints one JSON line of what it saw; exits non-zero on the first failed expectation.
import { chromium } from "playwright-core";
import net from "node:net";

const base = process.env.AORTA_BASE, token = process.env.AORTA_TOKEN, mllp = process.env.AORTA_MLLP;
const shots = process.env.AORTA_SHOTS;
const elrMllp = process.env.AORTA_ELR_MLLP, elrMessages = JSON.parse(process.env.AORTA_ELR_MESSAGES || "[]");

function hl7ts(ms) {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14) + "+0000";
}

// One ORU^R01 vitals panel; `hr` may be out of range to produce a dead letter.
function oru(ctrl, mrn, ms, v) {
  const ts = hl7ts(ms);
  const obx = [
    ["8867-4", "Heart rate", v.hr, "/min"], ["9279-1", "Respiratory rate", v.rr, "/min"],
    ["8310-5", "Body temperature", v.temp, "Cel"], ["8480-6", "Systolic blood pressure", v.sbp, "mm[Hg]"],
    ["59408-5", "Oxygen saturation", v.spo2, "%"], ["3150-0", "Inhaled oxygen concentration", 21, "%"],
  ].map(([c, n, x, u], i) => `OBX|${i + 1}|NM|${c}^${n}^LN||${x}|${u}^${u}^UCUM|||||F|||${ts}`);
  obx.push(`OBX|7|CWE|67775-7^Level of responsiveness^LN||A^Alert^L||||||F|||${ts}`);
  return [
    `MSH|^~\\&|BEDSIDE|AORTA GENERAL|AORTA|AORTA|${ts}||ORU^R01^ORU_R01|${ctrl}|P|2.5.1`,
    `PID|1||${mrn}^^^AGH^MR||TESTPATIENT^CONSOLE||19500101|F`,
    `PV1|1|I|WARD7^01^1^AGH`,
    `OBR|1|${ctrl}^AGH||85353-1^Vital signs panel^LN|||${ts}`,
    ...obx,
  ].join("\r") + "\r";
}

// Sends messages over MLLP to `addr` (host:port) and resolves with their ACK codes (MSA-1).
function send(messages, addr = mllp) {
  const [host, port] = addr.split(":");
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), host);
    const acks = [];
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      let end;
      while ((end = buf.indexOf("\x1c\r")) >= 0) {
        const frame = buf.slice(buf.indexOf("\x0b") + 1, end);
        buf = buf.slice(end + 2);
        const msa = frame.split("\r").find((s) => s.startsWith("MSA|")) || "";
        acks.push(msa.split("|")[1]);
        if (acks.length === messages.length) { sock.end(); resolve(acks); }
      }
    });
    sock.on("error", reject);
    sock.on("connect", () => { for (const m of messages) sock.write("\x0b" + m + "\x1c\r"); });
  });
}

function expect(cond, what) {
  if (!cond) { console.error("FAILED: " + what); process.exit(1); }
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
const seen = {};
try {
  // Without the cookie the console is refused.
  const denied = await page.goto(base + "/console");
  expect(denied.status() === 401, "console without a token answers 401, got " + denied.status());

  await page.goto(base + "/login");
  await page.fill("input[name=token]", "aorta_00000000_wrong");
  await page.click("#signin");
  expect((await page.content()).includes("not valid"), "a wrong token is refused on the login page");
  await page.fill("input[name=token]", token);
  await page.click("#signin");
  await page.waitForURL(base + "/console");
  await page.waitForSelector("#topics tbody tr[data-topic='aorta.audit']", { timeout: 10000 });
  await page.click("nav button[data-tab=alerts]");
  await page.waitForFunction(() => document.querySelector("#alert-state").textContent.includes("live"), null, { timeout: 10000 });

  // A deteriorating patient's vitals over MLLP: the alert must appear on the board, live.
  const now = Date.now() - 60_000;
  const acks = await send([
    oru("CONSOLE0001", "CON001", now, { hr: 128, rr: 27, temp: 39.1, sbp: 88, spo2: 90 }),
    oru("CONSOLE0002", "CON002", now, { hr: 400, rr: 16, temp: 37, sbp: 120, spo2: 97 }),
  ]);
  expect(acks.every((a) => a === "AA"), "both messages ACKed AA: " + acks);
  const sentAt = Date.now();
  // Observations arrive one by one, so the score climbs as the panel is read; the patient is
  // alerted on entering a band (medium, then high) and not again within the band.
  await page.waitForSelector("#board .alert.high", { timeout: 20000 });
  seen.alert_after_ms = Date.now() - sentAt;
  seen.alerts = await page.$$eval("#board .alert", (els) => els.map((e) => e.textContent.replace(/\s+/g, " ").trim()));
  const top = page.locator("#board .alert.high").first();
  expect(/NEWS2 \d+ high/.test(await top.textContent()), "a NEWS2 high alert: " + seen.alerts);
  if (shots) await page.screenshot({ path: shots + "/console-alerts.png" });
  await top.locator("button.ack").click();
  await page.waitForSelector("#board .alert.high.acked", { timeout: 5000 });
  expect((await top.textContent()).includes("acknowledged by browser"), "the board shows who acknowledged");

  // The overview shows the topics and pipelines the message went through.
  await page.click("nav button[data-tab=overview]");
  await page.waitForSelector("#topics tbody tr[data-topic='sepsis.alerts']", { timeout: 10000 });
  seen.topics = await page.$$eval("#topics tbody tr", (rows) => rows.map((r) => r.dataset.topic));
  await page.waitForSelector("#graph .node.step", { timeout: 10000 });
  seen.steps = await page.$$eval("#graph .node.step", (els) => els.map((e) => e.textContent.trim()));
  expect(seen.steps.some((t) => t.startsWith("[0] hl7-to-fhir")) && seen.steps.some((t) => t.startsWith("[0] early-warning")), "per-operator counters in the graph: " + seen.steps);
  expect(seen.topics.includes("hl7.inbound") && seen.topics.includes("fhir.clinical"), "topics listed: " + seen.topics);
  if (shots) await page.screenshot({ path: shots + "/console-overview.png", fullPage: true });

  // Restart a pipeline from the overview: the request is accepted and the restart counted.
  await page.click("#pipelines tbody tr[data-pipeline='elr-route'] button.restart");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("restart of elr-route requested"), null, { timeout: 5000 });
  await page.waitForFunction(() => {
    const row = document.querySelector("#pipelines tbody tr[data-pipeline='elr-route']");
    return row && row.textContent.includes("(restarts: 1)") && row.querySelector(".pill.running");
  }, null, { timeout: 10000 });
  seen.restarted = "elr-route";

  // Lab reports: two ORU^R01 over the ELR listener; the first one's day closes and shows.
  const elrAcks = await send(elrMessages, elrMllp);
  expect(elrAcks.length === 2 && elrAcks.every((a) => a === "AA"), "both lab reports ACKed AA: " + elrAcks);
  await page.click("nav button[data-tab=labs]");
  await page.fill("#labs-j", "WA");
  const labsDeadline = Date.now() + 15000;
  for (;;) {
    await page.click("#labs-load");
    await page.waitForTimeout(300);
    if (await page.$("#labs-table tbody tr[data-jurisdiction='WA']")) break;
    expect(Date.now() < labsDeadline, "a closed WA aggregate appears: " + (await page.textContent("#labs-msg")));
  }
  seen.labs = (await page.textContent("#labs-table tbody tr")).replace(/\s+/g, " ").trim();
  const cells = await page.$$eval("#labs-table tbody tr:first-child td", (tds) => tds.map((t) => t.textContent.trim()));
  expect(JSON.stringify(cells) === JSON.stringify(["2021-02-27", "WA", "94500-6", "1", "1", "0", "0", "100.0 %"]), "the aggregate row: " + cells);
  if (shots) await page.screenshot({ path: shots + "/console-labs.png" });

  // The HR of 400 was dead-lettered by the early-warning step: replay it from the UI.
  await page.click("nav button[data-tab=dlq]");
  await page.waitForFunction(() => [...document.querySelectorAll("#dlq-topic option")].some((o) => o.value === "sepsis-alerts.dlq"), null, { timeout: 10000 });
  await page.selectOption("#dlq-topic", "sepsis-alerts.dlq");
  await page.click("#dlq-load");
  await page.waitForSelector("#dlq-table tbody tr", { timeout: 10000 });
  seen.dlq_reason = (await page.textContent("#dlq-table tbody tr td:nth-child(4)")).trim();
  expect(seen.dlq_reason.includes("8867-4"), "the dead letter names the observation: " + seen.dlq_reason);
  await page.check("#dlq-table tbody tr input[type=checkbox]");
  await page.click("#dlq-replay");
  await page.waitForFunction(() => document.querySelector("#dlq-msg").textContent.startsWith("replayed"), null, { timeout: 10000 });
  seen.replay = await page.textContent("#dlq-msg");
  if (shots) await page.screenshot({ path: shots + "/console-dead-letters.png" });

  // The message viewer: the first message as named fields beside its FHIR mapping.
  await page.click("nav button[data-tab=viewer]");
  await page.click("#v-load");
  await page.waitForSelector("#v-hl7 table.seg", { timeout: 10000 });
  const viewer = await page.textContent("#v-hl7");
  expect(viewer.includes("Patient Identifier List") && viewer.includes("Observation Value"), "named HL7 fields");
  const fhir = await page.textContent("#v-fhir");
  expect(fhir.includes('"resourceType": "Bundle"') && fhir.includes("8867-4"), "the FHIR mapping is shown");
  if (shots) await page.screenshot({ path: shots + "/console-message.png", fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
