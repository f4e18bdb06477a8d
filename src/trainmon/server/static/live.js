// The dashboard's life after first paint. Changes arrive by Server-Sent Events and are applied
// to their card in place; while the stream is down the page polls the active list every 5 s
// (as the seed did), and a reconnect starts from a fresh snapshot. Updates are applied once per
// animation frame with only the newest version of each job, so a hidden tab does no DOM work
// and a burst costs one repaint. The server tells the page, on <main>, how long finished jobs
// stay (data-recent-seconds) and how each section is ordered (data-sort-*), so neither is
// copied here.
import { applyCard, createCard, showCancelError } from "./card.js";
import { initCancel } from "./cancel-dialog.js";
import { startTicker } from "./elapsed.js";
import { cardView, parseIso } from "./format.js";

const POLL_MS = 5000;
const EVENTS_URL = "/api/training/events";
const ACTIVE_URL = "/api/training/jobs?status=active&limit=500";

const nowSeconds = () => Date.now() / 1000;
const time = (iso) => parseIso(iso) ?? 0;
const words = (text) => (text || "").split(" ").filter(Boolean);

class Board {
  constructor(root) {
    this.root = root;
    this.recentSeconds = Number(root.dataset.recentSeconds);
    // Job fields, first set one wins: pages.py SORT_FIELDS.
    this.sortFields = { active: words(root.dataset.sortActive), recent: words(root.dataset.sortRecent) };
    this.lists = { active: root.querySelector("#active-list"), recent: root.querySelector("#recent-list") };
    this.jobs = new Map(); // id -> { job, card, section }
    this.pendingCancel = new Set();
    this.queue = new Map(); // id -> newest job not yet applied
    this.frame = 0;
    for (const card of root.querySelectorAll("[data-job-id]")) {
      const section = card.parentElement === this.lists.active ? "active" : "recent";
      const name = card.querySelector('[data-f="name"]').textContent;
      this.jobs.set(card.dataset.jobId, { job: null, card, section, name, updated: time(card.dataset.updated) });
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
    for (const job of jobs) this.upsert(job);
    if (jobs.length) this.afterChange();
  }

  upsert(job, now = nowSeconds()) {
    const known = this.jobs.get(job.id);
    const updated = time(job.updatedAt);
    if (known && updated < known.updated) return;
    const view = cardView(job, now);
    if (!view.active || job.cancelRequested) this.pendingCancel.delete(job.id);
    const card = known ? known.card : createCard();
    applyCard(card, view, this.pendingCancel.has(job.id));
    const section = view.active ? "active" : "recent";
    const entry = { job, card, section, name: view.name, updated };
    this.jobs.set(job.id, entry);
    if (!known || known.section !== section || !card.isConnected) this.place(entry);
  }

  sortKey(entry) {
    const job = entry.job;
    if (!job) return [0, ""];
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
      if (other && other !== entry && other.job && this.before(entry, other)) {
        next = child;
        break;
      }
    }
    // Moving a card that holds focus would drop it; a section change is worth that, order is not.
    if (entry.card.parentElement === list && entry.card.nextElementSibling === next) return;
    list.insertBefore(entry.card, next);
  }

  // A snapshot is the whole truth: cards it does not name are gone.
  reconcile(jobs) {
    this.queue.clear();
    const seen = new Set(jobs.map((j) => j.id));
    for (const [id, entry] of this.jobs) {
      if (!seen.has(id)) {
        entry.card.remove();
        this.jobs.delete(id);
      }
    }
    const now = nowSeconds();
    for (const job of jobs) {
      const known = this.jobs.get(job.id);
      // The snapshot is the newest truth, whatever stamp we hold (a server restored from a
      // backup may even have gone back in time).
      if (known) known.updated = -Infinity;
      this.upsert(job, now);
    }
    for (const section of ["active", "recent"]) {
      const entries = [...this.jobs.values()].filter((e) => e.section === section);
      entries.sort((a, b) => (this.before(a, b) ? -1 : 1));
      const list = this.lists[section];
      entries.forEach((entry, i) => {
        if (list.children[i] !== entry.card) list.insertBefore(entry.card, list.children[i] || null);
      });
    }
    this.afterChange();
  }

  // A deleted job's card goes at once, with any update still waiting for a frame.
  remove(id) {
    this.queue.delete(id);
    this.pendingCancel.delete(id);
    const entry = this.jobs.get(id);
    if (!entry) return;
    entry.card.remove();
    this.jobs.delete(id);
    this.afterChange();
  }

  // Finished jobs leave the page an hour after they end, as they leave the snapshot.
  prune(now) {
    let removed = false;
    for (const [id, entry] of this.jobs) {
      const job = entry.job;
      if (entry.section !== "recent" || !job) continue;
      if (now - time(job.finishedAt || job.updatedAt) > this.recentSeconds) {
        entry.card.remove();
        this.jobs.delete(id);
        removed = true;
      }
    }
    if (removed) this.afterChange();
  }

  afterChange() {
    const active = this.lists.active.childElementCount;
    const recent = this.lists.recent.childElementCount;
    this.root.querySelector("#active-count").textContent = String(active);
    this.root.querySelector("#recent-count").textContent = String(recent);
    this.root.querySelector("#empty").hidden = active > 0;
    this.root.querySelector("#recent-section").hidden = recent === 0;
    const title = "Training jobs · trainmon";
    document.title = active ? `(${active}) ${title}` : title;
  }

  activeIds() {
    return [...this.jobs.values()].filter((e) => e.section === "active").map((e) => e.job?.id ?? e.card.dataset.jobId);
  }

  nameOf(id) {
    return this.jobs.get(id)?.name ?? id;
  }

  setPendingCancel(id, on) {
    if (on) this.pendingCancel.add(id);
    else this.pendingCancel.delete(id);
    const entry = this.jobs.get(id);
    if (entry && entry.job) applyCard(entry.card, cardView(entry.job, nowSeconds()), on);
    else if (entry) {
      const button = entry.card.querySelector('[data-f="cancel"]');
      button.disabled = on;
      entry.card.querySelector('[data-f="cancel-text"]').hidden = !on;
    }
  }

  showCancelError(id, message) {
    const entry = this.jobs.get(id);
    if (entry) showCancelError(entry.card, message);
  }

  focusCard(id) {
    const card = this.jobs.get(id)?.card;
    if (card) {
      card.tabIndex = -1;
      card.focus();
    }
  }
}

class Connection {
  constructor(board, status) {
    this.board = board;
    this.status = status;
    this.source = null;
    this.pollTimer = 0;
    this.pollSeq = 0;
    this.appliedSeq = 0;
    this.down = false;
    document.addEventListener("visibilitychange", () => this.onVisibility());
  }

  setState(state, text) {
    this.status.dataset.state = state;
    this.status.querySelector(".conn-text").textContent = text;
  }

  open() {
    this.setState("connecting", "Connecting…");
    const source = new EventSource(EVENTS_URL);
    this.source = source;
    source.addEventListener("open", () => {
      this.down = false;
      this.stopPolling();
      this.setState("live", "Live");
    });
    source.addEventListener("snapshot", (event) => {
      this.down = false;
      this.stopPolling();
      this.setState("live", "Live");
      this.board.reconcile(JSON.parse(event.data).jobs);
      performance.mark("trainmon:snapshot");
    });
    source.addEventListener("job", (event) => this.board.enqueue(JSON.parse(event.data)));
    source.addEventListener("deleted", (event) => this.board.remove(JSON.parse(event.data).id));
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

  async poll() {
    const seq = ++this.pollSeq;
    try {
      const response = await fetch(ACTIVE_URL, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/login"); // the session ended (token rotated): sign in again
        return;
      }
      if (!response.ok) return;
      const body = await response.json();
      if (seq < this.appliedSeq) return; // a newer answer already landed
      this.appliedSeq = seq;
      const listed = new Set(body.jobs.map((j) => j.id));
      for (const job of body.jobs) this.board.enqueue(job);
      // Jobs that left the active list have finished: fetch each once for its final state.
      for (const id of this.board.activeIds()) {
        if (!listed.has(id)) this.refreshOne(id, seq);
      }
    } catch {
      // still down; the next tick tries again
    }
  }

  async refreshOne(id, seq) {
    try {
      const response = await fetch(`/api/training/jobs/${encodeURIComponent(id)}`, { credentials: "same-origin" });
      if (response.ok && seq >= this.appliedSeq) this.board.enqueue(await response.json());
    } catch {
      // next poll
    }
  }
}

function main() {
  const root = document.getElementById("main");
  if (!root || !document.getElementById("card-template")) return;
  const board = new Board(root);
  const announcer = document.getElementById("announcer");
  const announce = (text) => {
    announcer.textContent = text;
  };
  initCancel(board, document.getElementById("cancel-dialog"), announce);
  startTicker(root, (now) => {
    if (Math.floor(now) % 30 === 0) board.prune(now);
  });
  new Connection(board, document.getElementById("conn")).open();
}

main();
