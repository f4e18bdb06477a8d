// The dashboard's life after first paint. Changes arrive by Server-Sent Events and are applied
// to their card (and their row in the table of all jobs) in place; while the stream is down the
// page asks for every job it shows in one request every 5 s, and a reconnect starts from a
// fresh snapshot. Updates are applied once per animation frame with only the newest version of
// each job, so a hidden tab does no DOM work and a burst costs one repaint.
//
// The live sections stay bounded whatever the number of jobs: the newest data-active-max
// active jobs as cards (the rest counted, and one click away in the table) and the last
// data-recent-max finished ones, as rows. The server tells the page both sizes and each
// section's order (data-sort-*, on <main>), so none of them is copied here.
import { applyCard, createCard, showCancelError } from "./card.js";
import { applyRow, createRow } from "./row.js";
import { initCancel } from "./cancel-dialog.js";
import { startTicker } from "./elapsed.js";
import { cardView, formatDuration, parseIso, rowView } from "./format.js";
import { JobsTable } from "./jobs-table.js";

const POLL_MS = 5000;
const COUNT_MS = 10000;
const EVENTS_URL = "/api/training/events";
const JOBS_URL = "/api/training/jobs";

const nowSeconds = () => Date.now() / 1000;
const time = (iso) => parseIso(iso) ?? 0;
const words = (text) => (text || "").split(" ").filter(Boolean);
const ENDINGS = { completed: "completed", failed: "failed", cancelled: "was cancelled" };

class Board {
  constructor(root, table, announce) {
    this.root = root;
    this.table = table;
    this.announce = announce;
    this.max = { active: Number(root.dataset.activeMax), recent: Number(root.dataset.recentMax) };
    this.activeTotal = Number(root.dataset.activeTotal);
    // Active jobs this page has counted (cards, or heard of beyond them): a job's first event
    // adds one to the count, its end takes one off. The server's count corrects it now and then.
    this.counted = new Set();
    // Job fields, first set one wins: pages.py SORT_FIELDS.
    this.sortFields = { active: words(root.dataset.sortActive), recent: words(root.dataset.sortRecent) };
    this.lists = { active: root.querySelector("#active-list"), recent: root.querySelector("#recent-list") };
    this.jobs = new Map(); // id -> { job, el (a card or a row), section, name, updated }
    this.pendingCancel = new Set();
    this.queue = new Map(); // id -> newest job not yet applied
    this.frame = 0;
    for (const section of ["active", "recent"]) {
      for (const el of this.lists[section].querySelectorAll(":scope > [data-job-id]")) {
        const name = el.querySelector('[data-f="name"]').textContent;
        this.jobs.set(el.dataset.jobId, { job: null, el, section, name, updated: time(el.dataset.updated) });
        if (section === "active") this.counted.add(el.dataset.jobId);
      }
    }
  }

  // Keep only the newest version; a response that arrives after a newer one is dropped here.
  enqueue(job) {
    const queued = this.queue.get(job.id);
    if (queued && time(job.updatedAt) < time(queued.updatedAt)) return;
    this.queue.set(job.id, job);
    if (!this.frame && !document.hidden) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const jobs = [...this.queue.values()];
    this.queue.clear();
    for (const job of jobs) {
      this.upsert(job);
      this.table.onJob(job);
    }
    if (jobs.length) this.afterChange();
  }

  upsert(job, now = nowSeconds(), quiet = false) {
    const known = this.jobs.get(job.id);
    const updated = time(job.updatedAt);
    if (known && updated < known.updated) return;
    const view = cardView(job, now);
    const section = view.active ? "active" : "recent";
    if (view.active && !this.counted.has(job.id)) {
      this.counted.add(job.id);
      if (!quiet) this.activeTotal += 1;
    } else if (!view.active && this.counted.delete(job.id) && !quiet) {
      this.activeTotal = Math.max(0, this.activeTotal - 1);
    }
    if (known && known.section === "active" && !view.active && !quiet && ENDINGS[view.status]) {
      this.announce(`${view.name} ${ENDINGS[view.status]}`);
    }
    if (!view.active || job.cancelRequested) this.pendingCancel.delete(job.id);
    // Active jobs are cards, finished ones rows: a job that ends changes element.
    let el = known && known.section === section ? known.el : null;
    if (known && !el) known.el.remove();
    if (section === "active") {
      el ??= createCard();
      applyCard(el, view, this.pendingCancel.has(job.id));
    } else {
      el ??= createRow();
      applyRow(el, rowView(job, now));
    }
    const entry = { job, el, section, name: view.name, updated };
    this.jobs.set(job.id, entry);
    if (!known || known.section !== section || !el.isConnected) this.place(entry);
  }

  sortKey(entry) {
    const job = entry.job;
    if (!job) return [time(entry.el.dataset.updated), entry.el.dataset.jobId];
    const field = this.sortFields[entry.section].find((name) => job[name]);
    return [time(field && job[field]), job.id];
  }

  // Newest first, ties by id: the order pages.py renders.
  before(a, b) {
    const [ta, ia] = this.sortKey(a);
    const [tb, ib] = this.sortKey(b);
    return ta !== tb ? ta > tb : ia > ib;
  }

  place(entry) {
    const list = this.lists[entry.section];
    let next = null;
    for (const child of list.children) {
      const other = this.jobs.get(child.dataset.jobId);
      if (other && other !== entry && this.before(entry, other)) {
        next = child;
        break;
      }
    }
    // Moving a card that holds focus would drop it; a section change is worth that, order is not.
    if (entry.el.parentElement !== list || entry.el.nextElementSibling !== next) list.insertBefore(entry.el, next);
    this.trim(entry.section);
  }

  // A section keeps its newest cards; the oldest beyond the limit leave the page (the table has
  // them). A card being cancelled from this page stays until the server answers.
  trim(section) {
    const list = this.lists[section];
    while (list.childElementCount > this.max[section]) {
      const last = list.lastElementChild;
      const id = last.dataset.jobId;
      if (this.pendingCancel.has(id)) break;
      last.remove();
      this.jobs.delete(id);
    }
  }

  // A snapshot (or a fresh list of the newest active jobs) is the whole truth for the cards it
  // covers: cards of that section it does not name are gone.
  reconcile(jobs, sections = ["active", "recent"]) {
    this.queue.clear();
    if (sections.includes("active")) this.counted = new Set();
    const seen = new Set(jobs.map((j) => j.id));
    for (const [id, entry] of this.jobs) {
      if (sections.includes(entry.section) && !seen.has(id)) {
        entry.el.remove();
        this.jobs.delete(id);
      }
    }
    const now = nowSeconds();
    for (const job of jobs) {
      const known = this.jobs.get(job.id);
      // The snapshot is the newest truth, whatever stamp we hold (a server restored from a
      // backup may even have gone back in time).
      if (known) known.updated = -Infinity;
      this.upsert(job, now, true);
    }
    for (const section of sections) {
      const entries = [...this.jobs.values()].filter((e) => e.section === section);
      entries.sort((a, b) => (this.before(a, b) ? -1 : 1));
      const list = this.lists[section];
      entries.forEach((entry, i) => {
        if (list.children[i] !== entry.el) list.insertBefore(entry.el, list.children[i] || null);
      });
      this.trim(section);
    }
  }

  setActiveTotal(total) {
    this.activeTotal = total;
    this.afterChange();
  }

  // A deleted job's card goes at once, with any update still waiting for a frame.
  remove(id) {
    this.queue.delete(id);
    this.pendingCancel.delete(id);
    this.table.onDeleted(id);
    const entry = this.jobs.get(id);
    if (!entry) return;
    entry.el.remove();
    this.jobs.delete(id);
    this.afterChange();
  }

  afterChange() {
    const shown = this.lists.active.childElementCount;
    const recent = this.lists.recent.childElementCount;
    const total = Math.max(this.activeTotal, shown);
    this.root.querySelector("#active-count").textContent = String(total);
    this.root.querySelector("#recent-count").textContent = String(recent);
    this.root.querySelector("#empty").hidden = shown > 0;
    this.root.querySelector("#recent-section").hidden = recent === 0;
    this.root.querySelector("#active-more").hidden = total <= shown;
    this.root.querySelector("#active-shown").textContent = String(shown);
    this.root.querySelector("#active-all").textContent = total.toLocaleString("en-US");
    const title = "Training jobs · trainmon";
    document.title = total ? `(${total}) ${title}` : title;
  }

  // The jobs whose numbers move: for the one-request refresh while the stream is down.
  activeIds() {
    const cards = [...this.jobs.values()].filter((e) => e.section === "active").map((e) => e.el.dataset.jobId);
    return [...new Set([...cards, ...this.table.activeIds()])];
  }

  nameOf(id) {
    return this.jobs.get(id)?.name ?? id;
  }

  setPendingCancel(id, on) {
    if (on) this.pendingCancel.add(id);
    else this.pendingCancel.delete(id);
    const entry = this.jobs.get(id);
    if (!entry || entry.section !== "active") return;
    if (entry.job) applyCard(entry.el, cardView(entry.job, nowSeconds()), on);
    else {
      entry.el.querySelector('[data-f="cancel"]').disabled = on;
      entry.el.querySelector('[data-f="cancel-text"]').hidden = !on;
    }
  }

  showCancelError(id, message) {
    const entry = this.jobs.get(id);
    if (entry?.section === "active") showCancelError(entry.el, message);
  }

  // After a reconnect an old "Could not cancel: …" is no longer true, on a card or spoken.
  clearCancelErrors() {
    for (const entry of this.jobs.values()) {
      if (entry.section === "active") showCancelError(entry.el, "");
    }
    this.announce("");
  }

  // The disabled cancel button cannot keep focus: the job's status takes it (on its card, or on
  // its row once it has ended), which is also what the keyboard user wants to hear next.
  focusCard(id) {
    const badge = this.jobs.get(id)?.el.querySelector('[data-f="badge"]');
    if (badge) badge.focus();
  }
}

class Connection {
  constructor(board, status) {
    this.board = board;
    this.status = status;
    this.outage = board.root.querySelector("#outage");
    this.source = null;
    this.pollTimer = 0;
    this.pollSeq = 0;
    this.appliedSeq = 0;
    this.down = false;
    this.pollFailed = false;
    this.snapshots = 0;
    this.lastUpdate = Date.now();
    document.addEventListener("visibilitychange", () => this.onVisibility());
    setInterval(() => this.showOutage(), 1000);
    setInterval(() => this.refreshActive(), COUNT_MS);
  }

  setState(state, text) {
    this.status.dataset.state = state;
    this.status.querySelector(".conn-text").textContent = text;
  }

  heard() {
    this.lastUpdate = Date.now();
  }

  open() {
    this.setState("connecting", "Connecting…");
    const source = new EventSource(EVENTS_URL);
    this.source = source;
    source.addEventListener("open", () => {
      this.down = false;
      this.heard();
      this.stopPolling();
      this.setState("live", "Live");
    });
    source.addEventListener("snapshot", (event) => {
      this.recovered();
      const body = JSON.parse(event.data);
      this.board.reconcile(body.jobs);
      this.board.setActiveTotal(body.activeTotal);
      if (this.snapshots++ > 0) this.board.table.load(); // a reconnect: the rows may be old too
      performance.mark("trainmon:snapshot");
    });
    source.addEventListener("job", (event) => {
      this.heard();
      this.board.enqueue(JSON.parse(event.data));
    });
    source.addEventListener("deleted", (event) => {
      this.heard();
      this.board.remove(JSON.parse(event.data).id);
    });
    source.addEventListener("error", () => {
      this.down = true;
      this.setState("down", "Reconnecting… updating every 5 s");
      this.startPolling();
      // The browser retries on its own unless the server refused outright (say, a 401).
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(() => this.open(), POLL_MS);
      }
    });
  }

  recovered() {
    this.down = false;
    this.pollFailed = false;
    this.heard();
    this.stopPolling();
    this.setState("live", "Live");
    this.board.clearCancelErrors();
    this.showOutage();
  }

  // Stream and poll both failing: the page says so, and stops pretending its numbers are live.
  showOutage() {
    const lost = this.down && this.pollFailed;
    this.board.root.dataset.live = lost ? "false" : "true";
    this.outage.hidden = !lost;
    if (lost) {
      const age = formatDuration((Date.now() - this.lastUpdate) / 1000);
      this.outage.querySelector("#outage-age").textContent = `(last update ${age} ago)`;
    }
  }

  startPolling() {
    if (this.pollTimer || document.hidden) return;
    this.poll();
    this.pollTimer = setInterval(() => this.poll(), POLL_MS);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = 0;
  }

  onVisibility() {
    if (document.hidden) {
      this.stopPolling(); // a hidden tab costs the server nothing
    } else {
      if (this.down) this.startPolling();
      if (this.board.queue.size) this.board.flush();
    }
  }

  // One request for every job the page shows that may still change; with none, the newest
  // active jobs (new ones appear while the stream is down).
  async poll() {
    const seq = ++this.pollSeq;
    const ids = this.board.activeIds();
    const query = ids.length ? `ids=${ids.map(encodeURIComponent).join(",")}&limit=500` : `status=active&limit=${this.board.max.active}`;
    try {
      const response = await fetch(`${JOBS_URL}?${query}`, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/login"); // the session ended (token rotated): sign in again
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      if (seq < this.appliedSeq) return; // a newer answer already landed
      this.appliedSeq = seq;
      this.pollFailed = false;
      this.heard();
      for (const job of body.jobs) this.board.enqueue(job);
    } catch {
      this.pollFailed = true; // still down; the next tick tries again
    }
    this.showOutage();
  }

  // Beyond the cards there are more active jobs than the page shows: their count, and the
  // newest of them, come from the server now and then rather than from guesses.
  async refreshActive() {
    if (this.down || document.hidden || this.board.activeTotal <= this.board.max.active) return;
    try {
      const response = await fetch(`${JOBS_URL}?status=active&limit=${this.board.max.active}`, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      const body = await response.json();
      this.board.reconcile(body.jobs, ["active"]);
      this.board.setActiveTotal(body.total);
    } catch {
      // the stream's error handler takes over
    }
  }
}

function main() {
  const root = document.getElementById("main");
  if (!root || !document.getElementById("card-template")) return;
  const announcer = document.getElementById("announcer");
  const announce = (text) => {
    announcer.textContent = text;
  };
  const table = new JobsTable(root.querySelector("#all-jobs"));
  const board = new Board(root, table, announce);
  initCancel(board, document.getElementById("cancel-dialog"), announce);
  startTicker(root);
  table.start();
  new Connection(board, document.getElementById("conn")).open();
}

main();
