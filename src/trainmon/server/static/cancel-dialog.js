// Cancel from the page: the card's button opens a confirmation naming the job (a native modal
// <dialog>: focus is trapped, Escape closes it, focus returns to the button); confirming POSTs
// the cancel with the session's CSRF token, never the write token, which the page does not
// have. A page that is not signed in says how to sign in instead.

let csrfToken = null;

class SignInNeeded extends Error {}

const main = document.getElementById("main");
const signedIn = () => main?.dataset.signedIn === "true";

async function fetchCsrf() {
  const response = await fetch("/api/auth/csrf", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) throw new SignInNeeded("sign in first");
  if (!response.ok) throw new Error(await errorMessage(response));
  csrfToken = (await response.json()).csrfToken;
  return csrfToken;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not JSON: a proxy's page, say; the status line is all there is
  }
  return `the server answered ${response.status} ${response.statusText}`.trim();
}

async function postCancel(jobId, retried = false) {
  const token = csrfToken ?? (await fetchCsrf());
  const response = await fetch(`/api/training/jobs/${encodeURIComponent(jobId)}/cancel`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": token },
  });
  if (response.status === 401) throw new SignInNeeded("sign in first");
  // The token is derived from the session and the write token: fetch it again once.
  if (response.status === 403 && !retried) {
    csrfToken = null;
    return postCancel(jobId, true);
  }
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}

// `board` is live.js's: it owns the cards and the pending-cancel marks.
export function initCancel(board, dialog, announce) {
  const nameEl = dialog.querySelector("#cancel-name");
  const signIn = document.getElementById("sign-in-dialog");
  let target = null; // { id, button }
  let signInFrom = null; // the button to give focus back to

  function askToSignIn(id, button) {
    signIn.querySelector("#sign-in-name").textContent = board.nameOf(id);
    signIn.querySelector("#sign-in-id").textContent = id;
    signInFrom = button;
    signIn.showModal();
  }

  signIn.addEventListener("close", () => {
    if (signIn.open || !signInFrom) return;
    signInFrom.focus();
    signInFrom = null;
  });

  board.root.addEventListener("click", (event) => {
    const button = event.target.closest('[data-action="cancel"]');
    if (!button || button.disabled) return;
    const card = button.closest("[data-job-id]");
    if (!signedIn()) {
      askToSignIn(card.dataset.jobId, button);
      return;
    }
    target = { id: card.dataset.jobId, button };
    nameEl.textContent = board.nameOf(target.id);
    dialog.returnValue = "";
    dialog.showModal();
  });

  dialog.addEventListener("close", () => {
    // "close" is dispatched as a task: a quick Escape-then-Enter can reopen the dialog for the
    // next choice before the first close is seen. That stale close must not take the target.
    if (dialog.open) return;
    const chosen = target;
    target = null;
    if (!chosen) return;
    if (dialog.returnValue !== "confirm") {
      chosen.button.focus();
      return;
    }
    confirm(chosen.id);
  });

  async function confirm(id) {
    const name = board.nameOf(id);
    board.setPendingCancel(id, true);
    board.showCancelError(id, "");
    // The disabled button cannot hold focus; keep the keyboard user on this card.
    board.focusCard(id);
    announce(`Cancelling ${name}…`);
    try {
      const job = await postCancel(id);
      board.setPendingCancel(id, false);
      const focused = document.activeElement?.closest("[data-job-id]")?.dataset.jobId === id;
      board.upsert(job);
      board.afterChange();
      // A job that ended at once (it had not started) is now a row: its status keeps focus.
      if (focused) board.focusCard(id);
    } catch (error) {
      board.setPendingCancel(id, false);
      if (error instanceof SignInNeeded) {
        // The session ended (signed out elsewhere, expired, or the token changed).
        main.dataset.signedIn = "false";
        const message = "Could not cancel: your sign-in has ended. Sign in and try again.";
        board.showCancelError(id, message);
        announce(message);
        return;
      }
      // fetch() fails with the browser's own words ("Failed to fetch"): say what happened.
      const reason = error instanceof TypeError ? "the server cannot be reached" : String(error.message || error).replace(/\.$/, "");
      const message = `Could not cancel: ${reason}. You can try again.`;
      board.showCancelError(id, message);
      announce(message);
    }
  }
}
