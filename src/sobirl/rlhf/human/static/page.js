// The labelling page: shows the pair leased to this tab, sends the answer, shows the run's progress and return curve.
// window.sobirl exposes the state for tests: the pair shown and the click-to-next-pair latencies (ms).
"use strict";

const state = { pair: null, busy: false, answeredAt: null, latencies: [], objectUrls: [] };
window.sobirl = state;

const token = (() => {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) sessionStorage.setItem("sobirl-token", decodeURIComponent(match[1]));
  return sessionStorage.getItem("sobirl-token");
})();

const client = (() => {
  let id = sessionStorage.getItem("sobirl-client");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(12)); // randomUUID needs a secure context
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("sobirl-client", id);
  }
  return id;
})();

const $ = (id) => document.getElementById(id);
const buttons = Array.from(document.querySelectorAll("#answers button"));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function say(text, error = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", error);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 || response.status === 403) {
    throw new Error("this page needs the server's token: open the address the server printed (…/#token=…)");
  }
  return response;
}

async function clipUrl(id, side) {
  const response = await api(`/api/pairs/${id}/${side}`);
  if (!response.ok) throw new Error(`clip ${side} of pair ${id}: HTTP ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

// Record the pair shown (its clips already in the images), freeing the previous pair's clips.
function show(pair, urls) {
  state.objectUrls.forEach((url) => URL.revokeObjectURL(url));
  state.objectUrls = urls;
  state.pair = pair;
  $("pair").dataset.pairId = pair ? String(pair.id) : "";
  buttons.forEach((b) => { b.disabled = !pair; });
}

// Show the next pair leased to this tab, or wait for one; retries while the server is unreachable.
async function loadNext() {
  for (;;) {
    try {
      const response = await api(`/api/next?client=${client}`);
      if (!response.ok) throw new Error(`next pair: HTTP ${response.status}`);
      const { pair } = await response.json();
      if (pair) {
        const urls = await Promise.all(["left", "right"].map((side) => clipUrl(pair.id, side)));
        const images = [$("clip-left"), $("clip-right")];
        images.forEach((img, i) => { img.src = urls[i]; });
        await Promise.all(images.map((img) => img.decode()));
        show(pair, urls);
        if (state.answeredAt !== null) {
          const ms = performance.now() - state.answeredAt;
          state.latencies.push(ms);
          $("latency").textContent = `${ms.toFixed(0)} ms`;
          state.answeredAt = null;
        }
        say(`Pair ${pair.id}: which clip shows the better behaviour?`);
        return;
      }
      show(null, []);
      state.answeredAt = null; // the latency measures the server and the page, not a wait for new pairs
      say("No pair to label right now; new pairs appear here as training queues them.");
    } catch (err) {
      show(null, []);
      say(err instanceof TypeError ? "The server is unreachable; retrying…" : err.message, true);
    }
    await sleep(1000);
  }
}

// Send the answer for the pair shown (retried while the server is unreachable), then show the next pair.
async function answer(choice) {
  if (!state.pair || state.busy) return;
  state.busy = true;
  state.answeredAt = performance.now();
  buttons.forEach((b) => { b.disabled = true; });
  const id = state.pair.id;
  try {
    for (;;) {
      try {
        const response = await api(`/api/pairs/${id}/answer`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ choice, client }),
        });
        if (response.status === 409) say(`Pair ${id} was answered already.`);
        else if (!response.ok) throw new Error(`answer: HTTP ${response.status}`);
        break;
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        say("The server is unreachable; your answer is sent when it is back…", true);
        await sleep(1000);
      }
    }
    await loadNext();
  } catch (err) {
    say(err.message, true);
    buttons.forEach((b) => { b.disabled = false; });
  } finally {
    state.busy = false;
  }
}

function drawCurve(points) {
  const svg = $("curve");
  const [W, H, pad] = [1000, 180, 44];
  if (!points.length) {
    svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no evaluation yet</text>`;
    return;
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const sy = (y) => H - pad + 12 - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const path = points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
  const fmt = (v) => (Math.abs(v) >= 1000 ? v.toExponential(1) : String(Math.round(v * 10) / 10));
  svg.innerHTML = `
    <line class="axis" x1="${pad}" y1="${H - pad + 12}" x2="${W - pad}" y2="${H - pad + 12}"/>
    <line class="axis" x1="${pad}" y1="12" x2="${pad}" y2="${H - pad + 12}"/>
    <polyline class="line" points="${path}"/>
    <text x="${pad - 4}" y="${sy(y1) + 4}" text-anchor="end">${fmt(y1)}</text>
    <text x="${pad - 4}" y="${sy(y0) + 4}" text-anchor="end">${fmt(y0)}</text>
    <text x="${pad}" y="${H - 4}">step ${Math.round(x0).toLocaleString("en-US")}</text>
    <text x="${W - pad}" y="${H - 4}" text-anchor="end">step ${Math.round(x1).toLocaleString("en-US")}</text>`;
}

async function refreshStatus() {
  try {
    const response = await api("/api/status");
    if (!response.ok) return;
    const s = await response.json();
    const budget = s.budget === null ? "" : ` · budget ${s.budget}`;
    $("counts").textContent = `${s.labelled} labelled · ${s.queued} queued${budget}`;
    $("budget-bar").max = s.budget || Math.max(1, s.labelled + s.queued);
    $("budget-bar").value = s.labelled;
    $("mode").dataset.mode = s.mode || "";
    $("mode").textContent = s.mode ? `training ${s.mode}` : "training: status unknown";
    drawCurve(s.returns);
  } catch {
    // the answer and next-pair paths report an unreachable server
  }
}

buttons.forEach((b) => b.addEventListener("click", () => answer(b.dataset.choice)));
const KEYS = { ArrowLeft: "left", ArrowRight: "right", e: "equal", E: "equal", c: "cant_tell", C: "cant_tell" };
document.addEventListener("keydown", (event) => {
  const choice = KEYS[event.key];
  if (!choice || event.ctrlKey || event.metaKey || event.altKey) return;
  event.preventDefault();
  const button = buttons.find((b) => b.dataset.choice === choice);
  button.classList.add("pressed");
  setTimeout(() => button.classList.remove("pressed"), 150);
  answer(choice);
});

refreshStatus();
setInterval(refreshStatus, 2000);
loadNext();
