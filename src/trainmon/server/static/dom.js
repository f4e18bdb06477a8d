// What card.js and row.js share: writes that are skipped when nothing changed (so an update
// that moves one number repaints one number), the data-f elements of a template clone, and the
// clone itself.

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

export function setFlag(el, name, on) {
  if (el.hasAttribute(name) !== on) el.toggleAttribute(name, on);
}

// One lookup per element, then kept on it: 500 cards updating must not query 500 times.
export function fields(root) {
  if (!root._fields) {
    const found = {};
    for (const el of root.querySelectorAll("[data-f]")) found[el.dataset.f] = el;
    root._fields = found;
  }
  return root._fields;
}

export function cloneTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}
