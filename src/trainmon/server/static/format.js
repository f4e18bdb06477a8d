// How a job reads on the dashboard: pure functions, the caller passes `now` (Unix seconds).
// This is trainmon/presentation.py line for line; the server paints the first frame with that
// and this module keeps it current, so the two must agree to the character
// (tests/fixtures/formatting.json is one table of cases run through both: by
// tests/unit/test_formatting_fixture.py and, in a real browser, tests/e2e/test_formatting_fixture.py).

export const NOT_STARTED = "--:--:--";
export const DASH = "\u2014";
export const ACTIVE = new Set(["pending", "queued", "running"]);
const MAX_EXTRA_METRICS = 4;
const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

const badge = (variant, icon, text) => Object.freeze({ variant, icon, text });
// The seed's table; "stale" is ours: running, but the reporter has gone quiet.
const BADGES = Object.freeze({
  pending: badge("secondary", "clock", "Pending"),
  queued: badge("secondary", "clock", "Queued"),
  running: badge("default", "zap", "Running"),
  completed: badge("default", "check-circle", "Completed"),
  failed: badge("destructive", "alert-circle", "Failed"),
  cancelled: badge("outline", "x-circle", "Cancelled"),
});
const STALE_BADGE = badge("warning", "wifi-off", "Stale");
const UNKNOWN_BADGE = badge("outline", "help-circle", "Unknown");

export function badgeFor(status, stale = false) {
  if (stale && status === "running") return STALE_BADGE;
  return Object.hasOwn(BADGES, status) ? BADGES[status] : UNKNOWN_BADGE;
}

// Unix seconds with the microseconds kept (Date.parse would drop them); null if garbled.
export function parseIso(value) {
  if (typeof value !== "string") return null;
  const m = ISO.exec(value);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  if (y < 1 || h > 23 || mi > 59 || s > 59) return null;
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d); // not Date.UTC: it maps years 0-99 to 19xx
  date.setUTCHours(h, mi, s, 0);
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null; // Feb 30
  const frac = m[7] ? Number(`0.${m[7]}`) : 0;
  let offset = 0;
  if (m[8] !== "Z") {
    const sign = m[8][0] === "+" ? 1 : -1;
    offset = sign * (Number(m[8].slice(1, 3)) * 3600 + Number(m[8].slice(4, 6)) * 60);
  }
  return date.getTime() / 1000 + frac - offset;
}

const pad2 = (n) => String(n).padStart(2, "0");

export function formatHms(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const rest = total % 3600;
  return `${pad2(hours)}:${pad2(Math.floor(rest / 60))}:${pad2(rest % 60)}`;
}

export function formatElapsed(startedAt, now, finishedAt = null) {
  const start = parseIso(startedAt);
  if (start === null) return NOT_STARTED;
  let end = parseIso(finishedAt);
  if (end === null) end = now;
  if (!Number.isFinite(end - start)) return NOT_STARTED;
  return formatHms(end - start);
}

// Past 2**53 String() rounds to 17 significant digits; BigInt spells the double's exact
// value, as Python's int(float) does (steps go up to 2**63 - 1).
export function formatInt(value) {
  const magnitude = Math.abs(value);
  const exact = Number.isSafeInteger(magnitude) ? String(magnitude) : BigInt(magnitude).toString();
  const digits = exact.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return value < 0 ? `-${digits}` : digits;
}

function asInt(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  return Math.trunc(value);
}

export function formatSteps(current, total) {
  const cur = asInt(current);
  const tot = asInt(total);
  if (cur === null && tot === null) return DASH;
  if (tot === null) return formatInt(cur || 0);
  const past = cur !== null && tot > 0 && cur > tot ? " (past total)" : "";
  return `${cur === null ? DASH : formatInt(cur)} / ${formatInt(tot)}${past}`;
}

// presentation.py STALL_FACTOR and STALL_FLOOR_SECONDS.
const STALL_FACTOR = 10;
const STALL_FLOOR_SECONDS = 30;

export function stallNote(job, now) {
  const start = parseIso(job.startedAt);
  const moved = parseIso(job.stepAt);
  const step = asInt(job.currentStep);
  if (job.status !== "running" || start === null || moved === null || !step || step <= 0) return "";
  const usual = Math.max(0, moved - start) / step;
  const quiet = now - moved;
  if (quiet <= Math.max(STALL_FACTOR * usual, STALL_FLOOR_SECONDS)) return "";
  return `stalled ${formatDuration(quiet)}`;
}

// [the line a card shows, whether more lies behind "Show more"]: a traceback's last line.
export function errorParts(error) {
  const text = typeof error === "string" ? error : "";
  // Split and trim exactly as presentation.py does: \r\n, \r or \n; spaces and tabs.
  const lines = text.split(/\r\n|\r|\n/).map((line) => line.replace(/^[ \t]+|[ \t]+$/g, "")).filter(Boolean);
  if (!lines.length) return ["", false];
  return [lines[lines.length - 1], lines.length > 1];
}

export function numberValue(value) {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return null;
}

// toExponential rounds half up on the exact value, as presentation.py's Decimal does.
export function formatSig(value, digits = 4) {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value === 0) return "0";
  const [m, e] = Math.abs(value).toExponential(digits - 1).split("e");
  const mantissa = m.replace(".", "");
  const exp = Number(e);
  const neg = value < 0 ? "-" : "";
  if (exp < -4 || exp >= 6) {
    const tail = mantissa.slice(1).replace(/0+$/, "");
    const sign = exp >= 0 ? "+" : "-";
    return `${neg}${mantissa[0]}${tail ? "." + tail : ""}e${sign}${pad2(Math.abs(exp))}`;
  }
  let whole;
  let frac;
  if (exp >= 0) {
    whole = mantissa.slice(0, exp + 1).padEnd(exp + 1, "0");
    frac = mantissa.slice(exp + 1);
  } else {
    whole = "0";
    frac = "0".repeat(-exp - 1) + mantissa;
  }
  frac = frac.replace(/0+$/, "");
  return `${neg}${whole}${frac ? "." + frac : ""}`;
}

export function formatLoss(value) {
  const number = numberValue(value);
  if (number === null) return [DASH, false];
  return [formatSig(number), !Number.isFinite(number)];
}

export function stepsPerSecond(job) {
  const start = parseIso(job.startedAt);
  const seen = parseIso(job.lastSeenAt);
  const step = asInt(job.currentStep);
  if (start === null || seen === null || step === null || step <= 0) return null;
  const span = seen - start;
  if (span <= 0) return null;
  return step / span;
}

export function formatRate(rate) {
  if (rate === null || !Number.isFinite(rate) || rate <= 0) return DASH;
  if (rate >= 100) return `${formatInt(Number(rate.toFixed(0)))} steps/s`;
  if (rate >= 1) return `${rate.toFixed(1)} steps/s`;
  return `${(1 / rate).toFixed(1)} s/step`;
}

export function formatDuration(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  if (total < 60) return `${total}s`;
  if (total < 3600) return `${Math.floor(total / 60)}m ${pad2(total % 60)}s`;
  if (total < 86400) return `${Math.floor(total / 3600)}h ${pad2(Math.floor((total % 3600) / 60))}m`;
  return `${Math.floor(total / 86400)}d ${Math.floor((total % 86400) / 3600)}h`;
}

// When the job should end at its average rate, so the page can count down to it.
export function etaAt(job) {
  const rate = stepsPerSecond(job);
  const step = asInt(job.currentStep);
  const total = asInt(job.totalSteps);
  const seen = parseIso(job.lastSeenAt);
  if (rate === null || step === null || total === null || seen === null || total <= 0) return null;
  return seen + Math.max(0, total - step) / rate;
}

export function formatEta(end, now) {
  return end === null ? DASH : formatDuration(Math.max(0, end - now));
}

export function staleNote(lastSeen, now) {
  const quiet = lastSeen === null ? "yet" : "for " + formatDuration(now - lastSeen);
  return `No report ${quiet}; the training may be stuck or its reporter gone.`;
}

export function relativeTime(then, now) {
  if (then === null) return DASH;
  const ago = Math.floor(now - then);
  if (ago < 5) return "just now";
  if (ago < 60) return `${ago} s ago`;
  if (ago < 3600) return `${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `${Math.floor(ago / 3600)} h ago`;
  return `${Math.floor(ago / 86400)} d ago`;
}

let zoneFormat = null;
// The viewer's local time; in a UTC browser it reads exactly like the server's first paint.
export function exactTimeLocal(then) {
  if (then === null) return "";
  const d = new Date(then * 1000);
  zoneFormat ??= new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
  const zonePart = zoneFormat.formatToParts(d).find((p) => p.type === "timeZoneName");
  const zone = zonePart ? zonePart.value : "";
  const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  return `${date} ${time} ${zone}`.trim();
}

export function formatPercent(progress) {
  let number = numberValue(progress);
  if (number === null || !Number.isFinite(number)) number = 0;
  const value = Math.max(0, Math.min(100, number));
  return [value, `${Math.floor(value)}%`];
}

// Python's sorted() order. `<` compares UTF-16 units, which puts an astral character (a
// surrogate pair, 0xD800..) before U+E000..U+FFFF; at the first differing unit compare code points.
function byCodePoint(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a.charCodeAt(i) !== b.charCodeAt(i)) return a.codePointAt(i) - b.codePointAt(i);
  }
  return a.length - b.length;
}

export function formatExtra(metrics) {
  if (metrics === null || typeof metrics !== "object" || Array.isArray(metrics)) return "";
  const parts = [];
  for (const key of Object.keys(metrics).sort(byCodePoint).slice(0, MAX_EXTRA_METRICS)) {
    const number = numberValue(metrics[key]);
    if (number !== null) parts.push(`${key} ${formatSig(number)}`);
  }
  return parts.join(" \u00b7 ");
}

export function formatCommand(command) {
  if (command === null || typeof command !== "object" || !Array.isArray(command.argv)) return "";
  return command.argv.map(String).join(" ");
}

// The same fields as presentation.CardView, camelCased.
export function cardView(job, now) {
  const status = String(job.status ?? "");
  const stale = job.stale === true;
  const active = ACTIVE.has(status);
  const running = status === "running";
  const created = parseIso(job.createdAt);
  const finishedIso = job.finishedAt || (active ? null : job.updatedAt) || null;
  const [loss, lossBad] = formatLoss(job.currentLoss);
  const [progressValue, progressLabel] = formatPercent(job.progress);
  const note = stale && running ? staleNote(parseIso(job.lastSeenAt), now) : "";
  const end = etaAt(job);
  const stalled = stallNote(job, now);
  const error = status === "failed" && job.error ? String(job.error) : "";
  const [errorLast, errorMore] = errorParts(error);
  const id = String(job.id ?? "");
  return {
    id,
    name: String(job.name ?? ""),
    status,
    active,
    badge: badgeFor(status, stale),
    createdIso: String(job.createdAt || ""),
    createdRelative: relativeTime(created, now),
    createdTitle: exactTimeLocal(created),
    progressValue,
    progressAttr: progressValue.toFixed(2),
    progressLabel,
    elapsed: formatElapsed(job.startedAt, now, finishedIso),
    startedIso: String(job.startedAt || ""),
    finishedIso: String(finishedIso || ""),
    steps: formatSteps(job.currentStep, job.totalSteps),
    loss,
    lossBad,
    rate: formatRate(stepsPerSecond(job)),
    eta: stalled || formatEta(end, now),
    etaAt: end === null ? "" : end.toFixed(3),
    showRate: running,
    error,
    errorLast,
    errorMore,
    stepAtIso: String(job.stepAt || ""),
    stepCount: asInt(job.currentStep) === null ? "" : String(asInt(job.currentStep)),
    staleNote: note,
    lastSeenIso: String(job.lastSeenAt || ""),
    extra: formatExtra(job.metrics),
    command: formatCommand(job.command),
    cancelling: active && job.cancelRequested === true,
    logsUrl: job.executor === "local" ? `/api/training/jobs/${id}/logs/download` : "",
    updatedIso: String(job.updatedAt || ""),
  };
}

export function formatRunTime(started, finished, now) {
  if (started === null) return DASH;
  if (finished !== null) return formatDuration(finished - started);
  return `${formatDuration(now - started)}\u2026`;
}

// The same fields as presentation.RowView, camelCased.
export function rowView(job, now) {
  const status = String(job.status ?? "");
  const active = ACTIVE.has(status);
  const [progressValue, progressLabel] = formatPercent(job.progress);
  const [loss, lossBad] = formatLoss(job.currentLoss);
  const at = (name) => parseIso(job[`${name}At`]);
  const created = at("created");
  const started = at("started");
  const finished = at("finished");
  const error = status === "failed" && job.error ? String(job.error) : "";
  const [errorLast, errorMore] = errorParts(error);
  return {
    id: String(job.id ?? ""),
    name: String(job.name ?? ""),
    status,
    active,
    badge: badgeFor(status, job.stale === true),
    progressAttr: progressValue.toFixed(2),
    progressLabel,
    steps: formatSteps(job.currentStep, job.totalSteps),
    loss,
    lossBad,
    createdIso: String(job.createdAt || ""),
    createdRelative: relativeTime(created, now),
    createdTitle: exactTimeLocal(created),
    startedIso: String(job.startedAt || ""),
    startedRelative: relativeTime(started, now),
    startedTitle: exactTimeLocal(started),
    finishedIso: String(job.finishedAt || ""),
    finishedRelative: relativeTime(finished, now),
    finishedTitle: exactTimeLocal(finished),
    duration: formatRunTime(started, active ? null : finished, now),
    tags: Array.isArray(job.tags) ? job.tags.map(String).join(", ") : "",
    updatedIso: String(job.updatedAt || ""),
    error,
    errorLast,
    errorMore,
  };
}
