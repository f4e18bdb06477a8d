// The once-a-second clock of the page: elapsed time of running jobs, ETA countdowns, "created
// 5 min ago" and the stale note. It reads only data attributes that card.js keeps current, so
// a tick needs no job objects and costs a text write only where a string changed.
import { formatDuration, formatElapsed, parseIso, relativeTime, stallNote, staleNote, DASH } from "./format.js";

function set(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function tick(root, now) {
  // While the page has lost the server its numbers are not live: they stop, and say so (dimmed).
  const live = root.dataset.live !== "false";
  for (const el of root.querySelectorAll('[data-f="elapsed"]')) {
    // Finished jobs carry data-finished, so they stay frozen at their final value.
    if (el.dataset.finished || !live) continue;
    set(el, formatElapsed(el.dataset.started, now, null));
  }
  for (const el of root.querySelectorAll('[data-f="eta"]')) {
    if (!live || el.closest("[data-f='eta-box']")?.hidden) continue;
    const moved = { status: "running", startedAt: el.dataset.started, stepAt: el.dataset.stepAt, currentStep: el.dataset.step === "" ? null : Number(el.dataset.step) };
    const stalled = stallNote(moved, now);
    const end = el.dataset.etaAt ? Number(el.dataset.etaAt) : NaN;
    set(el, stalled || (Number.isFinite(end) ? formatDuration(Math.max(0, end - now)) : DASH));
  }
  for (const el of root.querySelectorAll("time[data-f]")) {
    set(el, relativeTime(parseIso(el.getAttribute("datetime")), now));
  }
  for (const el of root.querySelectorAll('[data-f="stale"]')) {
    if (el.textContent) set(el, staleNote(parseIso(el.dataset.seen), now));
  }
}

// Ticks on the second boundary, so every card turns over together; returns a stop function.
export function startTicker(root, onTick = () => {}) {
  let timer = 0;
  const schedule = () => {
    timer = setTimeout(run, 1000 - (Date.now() % 1000) + 5);
  };
  const run = () => {
    const now = Date.now() / 1000;
    tick(root, now);
    onTick(now);
    schedule();
  };
  run();
  return () => clearTimeout(timer);
}
