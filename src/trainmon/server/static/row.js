// A job row's DOM from a view (format.js rowView), as card.js is for cards: the markup lives in
// templates/_job_row.html, new rows are clones of its <template> rendering, and only the
// elements marked data-f are written (and only where a value changed).
import { cloneTemplate, fields, setAttr, setText } from "./dom.js";

export function createRow() {
  return cloneTemplate("row-template");
}

export function applyRow(row, v) {
  const f = fields(row);
  setAttr(row, "data-job-id", v.id);
  setAttr(row, "data-status", v.status);
  setAttr(row, "data-updated", v.updatedIso);
  setText(f.name, v.name);
  setText(f.id, v.id);
  setAttr(f.badge, "data-variant", v.badge.variant);
  setAttr(f.badge, "data-status", v.status);
  setText(f["badge-text"], v.badge.text);
  setAttr(f.progress, "value", v.progressAttr);
  setAttr(f.progress, "aria-label", `Progress of ${v.name}`);
  setText(f.percent, v.progressLabel);
  setText(f.steps, v.steps);
  setAttr(f.loss, "data-bad", v.lossBad ? "true" : "false");
  setText(f.loss, v.loss);
  for (const name of ["created", "started", "finished"]) {
    setAttr(f[name], "datetime", v[`${name}Iso`]);
    setAttr(f[name], "title", v[`${name}Title`]);
    setText(f[name], v[`${name}Relative`]);
  }
  setText(f.duration, v.duration);
  setText(f.tags, v.tags);
  f["error-box"].hidden = !v.error;
  setText(f.error, v.errorLast);
  setText(f["error-full"], v.errorMore ? v.error : "");
}

// Client-only state: the row's job no longer matches the table's filters (it stays until the
// next load rather than vanish under the reader's eyes).
export function markUnmatched(row, on) {
  fields(row).unmatched.hidden = !on;
  setAttr(row, "data-unmatched", on ? "true" : "false");
}
