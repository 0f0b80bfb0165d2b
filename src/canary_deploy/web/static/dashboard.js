// canary dashboard: keep the live parts up to date (server-sent events carry each part's
// new HTML) and send steering actions, each confirmed first.
"use strict";

const live = (name) => document.querySelector(`[data-live="${name}"]`);
const connection = document.getElementById("connection");
const result = document.getElementById("action-result");
const dialog = document.getElementById("confirm");
const session = document.querySelector('meta[name="canary-session"]');

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => setConnection("live", "live"));
  source.addEventListener("error", () => setConnection("reconnecting", "reconnecting…"));
  source.addEventListener("update", (event) => {
    const parts = JSON.parse(event.data);
    for (const [name, html] of Object.entries(parts)) {
      const element = live(name);
      if (element) element.innerHTML = html;
    }
  });
}

function setConnection(state, text) {
  connection.dataset.state = state;
  connection.textContent = text;
}

// Resolves with true when the user confirms `question` in the page's dialog.
function confirmed(question) {
  return new Promise((resolve) => {
    document.getElementById("confirm-text").textContent = question;
    dialog.returnValue = "cancel";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

async function send(body) {
  result.dataset.state = "pending";
  result.textContent = `${body.action.replace("_", " ")}: waiting until it is in effect…`;
  let answer;
  try {
    const response = await fetch("/api/actions", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-Canary-Token": session ? session.content : "",
      },
      body: JSON.stringify(body),
    });
    answer = await response.json();
  } catch (error) {
    answer = { ok: false, error: String(error) };
  }
  result.dataset.state = answer.ok ? "ok" : "refused";
  result.textContent = answer.ok
    ? answer.message
    : `Refused: ${answer.error}${answer.hint ? ` (${answer.hint})` : ""}`;
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  if (await confirmed(button.dataset.confirm)) send({ action: button.dataset.action });
});

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form.set-weights");
  if (!form) return;
  event.preventDefault();
  const stable = form.elements.stable.value;
  const canary = form.elements.canary.value;
  if (await confirmed(`Set the listener's weights to ${stable}/${canary} (stable/canary)?`)) {
    send({ action: "set_weights", stable, canary });
  }
});

connect();
