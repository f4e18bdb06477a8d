// A card's DOM from a view (format.js cardView). The markup itself lives in one place,
// templates/_job_card.html: new cards are clones of its <template> rendering, and this module
// only sets text and attributes on the elements marked data-f, so a card drawn here is the same
// markup as one the server drew. Every write is skipped when nothing changed, so an update
// that moves one number repaints one number.

import { cloneTemplate, fields, setAttr, setFlag, setText } from "./dom.js";

export function createCard() {
  return cloneTemplate("card-template");
}

// `pendingCancel`: this page sent a cancel the server has not confirmed yet.
export function applyCard(card, v, pendingCancel = false) {
  const f = fields(card);
  const nameId = `job-${v.id}-name`;
  setAttr(card, "id", `job-${v.id}`);
  setAttr(card, "data-job-id", v.id);
  setAttr(card, "data-status", v.status);
  setAttr(card, "data-updated", v.updatedIso);
  setAttr(card, "aria-labelledby", nameId);

  setAttr(f.name, "id", nameId);
  setAttr(f.name, "title", v.name);
  setText(f.name, v.name);
  setText(f.id, v.id);
  setAttr(f.created, "datetime", v.createdIso);
  setAttr(f.created, "title", v.createdTitle);
  setText(f.created, v.createdRelative);

  setAttr(f.badge, "data-variant", v.badge.variant);
  setAttr(f.badge, "data-status", v.status);
  setAttr(f["badge-icon"], "href", `#i-${v.badge.icon}`);
  setText(f["badge-text"], v.badge.text);

  const cancelling = v.active && (v.cancelling || pendingCancel);
  setAttr(f.cancel, "title", cancelling ? "Cancelling…" : "Cancel job");
  setAttr(f.cancel, "aria-label", (cancelling ? "Cancelling " : "Cancel ") + v.name);
  setFlag(f.cancel, "hidden", !v.active);
  setFlag(f.cancel, "disabled", cancelling);
  setFlag(f["cancel-text"], "hidden", !cancelling);

  setAttr(f.progress, "value", v.progressAttr);
  setAttr(f.progress, "aria-label", `Progress of ${v.name}`);
  setText(f.percent, v.progressLabel);

  setAttr(f.elapsed, "data-started", v.startedIso);
  setAttr(f.elapsed, "data-finished", v.finishedIso);
  setText(f.elapsed, v.elapsed);
  setText(f.steps, v.steps);
  setAttr(f.loss, "data-bad", v.lossBad ? "true" : "false");
  setAttr(f.loss, "title", v.lossBad ? "Not a finite number: the training has likely diverged" : "");
  setText(f.loss, v.loss);
  setFlag(f["rate-box"], "hidden", !v.showRate);
  setText(f.rate, v.rate);
  setFlag(f["eta-box"], "hidden", !v.showRate);
  setAttr(f.eta, "data-eta-at", v.etaAt);
  setAttr(f.eta, "data-started", v.startedIso);
  setAttr(f.eta, "data-step-at", v.stepAtIso);
  setAttr(f.eta, "data-step", v.stepCount);
  setText(f.eta, v.eta);

  setFlag(f["error-box"], "hidden", !v.error);
  setText(f.error, v.errorLast);
  setFlag(f["error-more"], "hidden", !v.errorMore);
  setText(f["error-full"], v.errorMore ? v.error : "");
  setFlag(f["stale-box"], "hidden", !v.staleNote);
  setAttr(f.stale, "data-seen", v.lastSeenIso);
  setText(f.stale, v.staleNote);
  setFlag(f.extra, "hidden", !v.extra);
  setText(f.extra, v.extra);
  setFlag(f["command-box"], "hidden", !v.command);
  setAttr(f.command, "title", v.command);
  setText(f.command, v.command);
  setAttr(f.logs, "href", v.logsUrl || "#");
  setAttr(f.logs, "aria-label", `Log of ${v.name}`);
  setFlag(f.logs, "hidden", !v.logsUrl);
}

// Client-only state: the outcome of this page's own cancel request.
export function showCancelError(card, message) {
  const el = fields(card)["cancel-error"];
  setText(el, message);
  setFlag(el, "hidden", !message);
}
