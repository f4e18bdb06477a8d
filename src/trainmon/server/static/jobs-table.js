// The table of every job: filters, search, sort and pages, all kept in the page's URL, so a
// reload, back/forward or a pasted link shows the same view. The server does the filtering
// and paging (GET /api/training/jobs, keyset cursors); the table holds one page, so the DOM
// stays the same size with 100 jobs or 100,000. Live job events (live.js) update rows in
// place; a new job that matches the filters shows as a "N new jobs" button instead of moving
// the rows under the reader's eyes, and a row that stops matching stays, marked, until the
// next load.
import { setText } from "./dom.js";
import { ACTIVE, parseIso, rowView } from "./format.js";
import { applyRow, createRow, markUnmatched } from "./row.js";

const JOBS_URL = "/api/training/jobs";
const PAGE_SIZE = 50;
const RANGES = { "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
// The API's status groups, spelled out so the checkboxes can show them.
const GROUPS = { active: ["pending", "queued", "running"], finished: ["completed", "failed", "cancelled"] };
const TYPING_MS = 300;

const nowSeconds = () => Date.now() / 1000;


// The view as the URL spells it: ?status=failed,cancelled&q=lora&tag=sweep-3&range=7d&sort=-loss
export function readState(search) {
  const params = new URLSearchParams(search);
  const list = (name) => (params.get(name) || "").split(",").map((s) => s.trim()).filter(Boolean);
  const statuses = list("status").flatMap((s) => GROUPS[s] || [s]);
  return {
    statuses: [...new Set(statuses)],
    q: params.get("q") || "",
    tags: list("tag"),
    range: params.get("range") || "",
    since: params.get("since") || "",
    until: params.get("until") || "",
    sort: params.get("sort") || "-createdAt",
  };
}

export function writeState(state) {
  const params = new URLSearchParams();
  if (state.statuses.length) params.set("status", state.statuses.join(","));
  if (state.q) params.set("q", state.q);
  if (state.tags.length) params.set("tag", state.tags.join(","));
  if (state.range) params.set("range", state.range);
  if (state.range === "custom" && state.since) params.set("since", state.since);
  if (state.range === "custom" && state.until) params.set("until", state.until);
  if (state.sort !== "-createdAt") params.set("sort", state.sort);
  const text = params.toString();
  return text ? `?${text}` : "";
}

// createdSince/createdUntil for the API, in epoch seconds (null: no bound).
export function createdBounds(state, now) {
  if (RANGES[state.range]) return [now - RANGES[state.range], null];
  if (state.range !== "custom") return [null, null];
  const day = (text, plus) => {
    const t = parseIso(text ? `${text}T00:00:00Z` : null);
    return t === null ? null : t + plus;
  };
  return [day(state.since, 0), day(state.until, 86400)]; // "to" includes its whole day
}

function apiParams(state, now) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), sort: state.sort });
  if (state.statuses.length) params.set("status", state.statuses.join(","));
  if (state.q) params.set("q", state.q);
  for (const tag of state.tags) params.append("tag", tag);
  const [since, until] = createdBounds(state, now);
  if (since !== null) params.set("createdSince", new Date(since * 1000).toISOString());
  if (until !== null) params.set("createdUntil", new Date(until * 1000).toISOString());
  return params;
}

// Whether a job belongs in this view, by the rules the server filters with (job_query.py).
export function matches(job, state, bounds) {
  if (state.statuses.length && !state.statuses.includes(job.status)) return false;
  const tags = Array.isArray(job.tags) ? job.tags : [];
  if (!state.tags.every((t) => tags.includes(t))) return false;
  if (state.q) {
    const text = [job.name, job.id, ...tags, job.error || ""].join(" ").toLowerCase();
    if (!text.includes(state.q.trim().toLowerCase())) return false;
  }
  const created = parseIso(job.createdAt);
  const [since, until] = bounds;
  if (since !== null && (created === null || created < since)) return false;
  if (until !== null && (created === null || created >= until)) return false;
  return true;
}

export class JobsTable {
  constructor(section) {
    this.section = section;
    this.form = section.querySelector("#filters");
    this.rows = section.querySelector("#jobs-rows");
    this.status = section.querySelector("#table-status");
    this.count = section.querySelector("#all-count");
    this.pill = section.querySelector("#new-jobs");
    this.prev = section.querySelector("#prev-page");
    this.next = section.querySelector("#next-page");
    this.state = readState(location.search);
    this.cursors = [null]; // the cursor of each page shown so far; the last is this page's
    this.nextCursor = null;
    this.loadedAt = nowSeconds();
    this.bounds = [null, null];
    this.newIds = new Set();
    this.byId = new Map(); // job id -> row
    this.request = 0;
    this.typing = 0;
    this.wire();
  }

  wire() {
    this.form.addEventListener("submit", (event) => event.preventDefault());
    this.form.addEventListener("change", (event) => {
      if (event.target.name === "q") return; // typed text has its own, debounced path
      this.fromForm(true);
    });
    this.form.q.addEventListener("input", () => {
      clearTimeout(this.typing);
      this.typing = setTimeout(() => this.fromForm(false), TYPING_MS);
    });
    this.form.addEventListener("reset", () => setTimeout(() => this.fromForm(true)));
    for (const th of this.section.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.sort));
    }
    this.prev.addEventListener("click", () => this.turn(-1));
    this.next.addEventListener("click", () => this.turn(1));
    this.pill.addEventListener("click", () => this.load());
    window.addEventListener("popstate", () => {
      this.state = readState(location.search);
      this.load();
    });
  }

  start() {
    this.load();
  }

  // -- the view ---------------------------------------------------------------------------

  fromForm(push) {
    const form = this.form;
    const statuses = [...form.querySelectorAll('input[name="status"]:checked')].map((i) => i.value);
    const tags = form.tag.value.split(",").map((s) => s.trim()).filter(Boolean);
    this.state = {
      statuses,
      q: form.q.value.trim(),
      tags,
      range: form.range.value,
      since: form.since.value,
      until: form.until.value,
      sort: this.state.sort,
    };
    this.navigate(push);
  }

  sortBy(field) {
    const current = this.state.sort.replace(/^-/, "");
    const descending = this.state.sort.startsWith("-");
    // A new column starts descending for times and numbers people scan from the top (newest,
    // longest, worst), ascending for names and statuses.
    const fresh = ["name", "status"].includes(field) ? field : `-${field}`;
    this.state = { ...this.state, sort: current === field ? (descending ? field : `-${field}`) : fresh };
    this.navigate(true);
  }

  navigate(push) {
    const url = `${location.pathname}${writeState(this.state)}${location.hash}`;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    this.load();
  }

  showState() {
    const form = this.form;
    for (const box of form.querySelectorAll('input[name="status"]')) box.checked = this.state.statuses.includes(box.value);
    // A field being typed in keeps what the reader typed.
    if (document.activeElement !== form.q) form.q.value = this.state.q;
    if (document.activeElement !== form.tag) form.tag.value = this.state.tags.join(", ");
    form.range.value = this.state.range in RANGES || this.state.range === "custom" ? this.state.range : "";
    form.since.value = this.state.since;
    form.until.value = this.state.until;
    this.section.querySelector("#custom-range").hidden = form.range.value !== "custom";
    const [field, order] = [this.state.sort.replace(/^-/, ""), this.state.sort.startsWith("-") ? "descending" : "ascending"];
    for (const th of this.section.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === field) th.setAttribute("aria-sort", order);
      else th.removeAttribute("aria-sort");
    }
  }

  // -- pages ------------------------------------------------------------------------------

  load() {
    this.cursors = [null];
    this.fetchPage();
  }

  turn(step) {
    if (step > 0 && this.nextCursor) this.cursors.push(this.nextCursor);
    else if (step < 0 && this.cursors.length > 1) this.cursors.pop();
    else return;
    this.fetchPage();
  }

  async fetchPage() {
    this.showState();
    const seq = ++this.request;
    const now = nowSeconds();
    const params = apiParams(this.state, now);
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    this.section.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(`${JOBS_URL}?${params}`, { credentials: "same-origin", cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (seq !== this.request) return; // a newer request is on its way
      if (!response.ok) {
        this.showError(body?.error?.message || `the server answered ${response.status}`);
        return;
      }
      this.loadedAt = now;
      this.bounds = createdBounds(this.state, now);
      this.newIds.clear();
      this.showNew();
      this.showRows(body);
    } catch {
      if (seq === this.request) this.showError("the server cannot be reached; retrying when it is back");
    } finally {
      if (seq === this.request) this.section.removeAttribute("aria-busy");
    }
  }

  showError(message) {
    setText(this.status, `Could not load jobs: ${message}.`);
  }

  showRows(body) {
    this.byId.clear();
    const rows = body.jobs.map((job) => {
      const row = createRow();
      this.fill(row, job);
      this.byId.set(job.id, row);
      return row;
    });
    this.rows.replaceChildren(...rows);
    performance.mark("trainmon:table"); // benches time "the page shows its data" by it
    this.nextCursor = body.nextCursor;
    this.prev.disabled = this.cursors.length <= 1;
    this.next.disabled = !body.nextCursor;
    const total = `${body.total.toLocaleString("en-US")}${body.totalExact ? "" : "+"}`;
    setText(this.count, total);
    const first = (this.cursors.length - 1) * PAGE_SIZE + 1;
    setText(
      this.status,
      body.jobs.length
        ? `Jobs ${first.toLocaleString("en-US")}–${(first + body.jobs.length - 1).toLocaleString("en-US")} of ${total}`
        : this.filtered() ? "No job matches these filters." : "No jobs yet.",
    );
  }

  filtered() {
    const s = this.state;
    return Boolean(s.statuses.length || s.q || s.tags.length || s.range);
  }

  fill(row, job, now = nowSeconds()) {
    applyRow(row, rowView(job, now));
    markUnmatched(row, !matches(job, this.state, this.bounds));
  }

  // -- live -------------------------------------------------------------------------------

  onJob(job) {
    const row = this.byId.get(job.id);
    if (row) {
      this.fill(row, job);
      return;
    }
    const created = parseIso(job.createdAt);
    if (created !== null && created >= this.loadedAt - 1 && matches(job, this.state, this.bounds)) {
      this.newIds.add(job.id);
      this.showNew();
    }
  }

  onDeleted(id) {
    this.newIds.delete(id);
    this.showNew();
    const row = this.byId.get(id);
    if (row) {
      row.remove();
      this.byId.delete(id);
    }
  }

  showNew() {
    const n = this.newIds.size;
    this.pill.hidden = n === 0;
    setText(this.pill, n === 1 ? "1 new job — show" : `${n} new jobs — show`);
  }

  activeIds() {
    return [...this.byId.values()].filter((row) => ACTIVE.has(row.dataset.status)).map((row) => row.dataset.jobId);
  }
}
