// lmd review page: the slider, the loupe, the buttons and the keyboard (a, r, ←, →).
// Every state-changing request is a same-origin JSON POST carrying the page's CSRF token.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

function show(text, error) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = error ? "error" : "";
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function summary(data) {
  const done = (data.items || []).map((d) => `job ${d.job_id} ${d.state}: ${d.message}`);
  const refused = (data.refused || []).map((m) => `refused: ${m}`);
  return { text: done.concat(refused).join("\n"), failed: refused.length > 0 };
}

// ---- grid ----------------------------------------------------------------------------
function setUpGrid() {
  const picks = () => Array.from(document.querySelectorAll("input.pick"));
  const bulk = document.getElementById("bulk-accept");
  const all = document.getElementById("select-all");
  const refresh = () => { bulk.disabled = !picks().some((p) => p.checked); };
  picks().forEach((p) => p.addEventListener("change", refresh));
  all.addEventListener("change", () => { picks().forEach((p) => { p.checked = all.checked; }); refresh(); });
  bulk.addEventListener("click", async () => {
    const ids = picks().filter((p) => p.checked).map((p) => Number(p.value));
    bulk.disabled = true;
    try {
      const result = summary(await post("/api/accept", { ids }));
      show(result.text, result.failed);
      if (!result.failed) window.location.reload();
    } catch (e) { show(String(e.message || e), true); refresh(); }
  });
  document.querySelectorAll("[data-autosubmit]").forEach((box) =>
    box.addEventListener("change", () => box.form.submit()));
}

// ---- detail --------------------------------------------------------------------------
function setUpDetail() {
  const detail = document.getElementById("detail");
  const job = Number(detail.dataset.job);
  const compare = document.getElementById("compare");
  const slider = document.getElementById("slider");
  const loupe = document.getElementById("loupe");

  const split = (value) => { compare.style.setProperty("--split", `${value}%`); };
  slider.addEventListener("input", () => split(slider.value));
  split(slider.value);

  // Dragging on the picture moves the split; hovering moves the loupe.
  let dragging = false;
  const fraction = (event) => {
    const box = compare.getBoundingClientRect();
    const x = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
    const y = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 1);
    return { x, y };
  };
  let pending = null;
  const moveLoupe = (event) => {
    const { x, y } = fraction(event);
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => {
      loupe.src = `${loupe.dataset.src}?x=${x.toFixed(4)}&y=${y.toFixed(4)}`;
    }, 60);
  };
  compare.addEventListener("pointerdown", (e) => { dragging = true; compare.setPointerCapture(e.pointerId); });
  compare.addEventListener("pointerup", () => { dragging = false; });
  compare.addEventListener("pointermove", (event) => {
    if (dragging) {
      slider.value = Math.round(fraction(event).x * 100);
      split(slider.value);
    }
    moveLoupe(event);
  });

  const go = (url) => { if (url) window.location.href = url; };
  const next = () => detail.dataset.next || detail.dataset.grid;
  const decide = async (action) => {
    const button = document.getElementById(action);
    if (!button || button.disabled) return;
    button.disabled = true;
    try {
      const result = summary(await post(`/api/${action}`, { ids: [job] }));
      show(result.text, result.failed);
      if (!result.failed) go(next());
      else button.disabled = false;
    } catch (e) { show(String(e.message || e), true); button.disabled = false; }
  };
  document.getElementById("accept").addEventListener("click", () => decide("accept"));
  document.getElementById("reject").addEventListener("click", () => decide("reject"));
  document.getElementById("redo").addEventListener("click", async () => {
    const restorer = document.getElementById("redo-restorer").value;
    try {
      const data = await post("/api/redo", { id: job, restorer });
      show(`job ${job}: ${data.message}`, false);
      go(next());
    } catch (e) { show(String(e.message || e), true); }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "select", "textarea", "button"].includes(tag) && event.target !== document.body) {
      if (!(tag === "button" && (event.key === "a" || event.key === "r"))) return;
    }
    if (event.key === "a") { event.preventDefault(); decide("accept"); }
    else if (event.key === "r") { event.preventDefault(); decide("reject"); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); go(detail.dataset.prev); }
    else if (event.key === "ArrowRight") { event.preventDefault(); go(detail.dataset.next); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "grid") setUpGrid();
  if (page === "detail") setUpDetail();
});
