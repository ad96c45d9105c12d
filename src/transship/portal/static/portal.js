// Transship portal: progressive enhancement only; every page works without this file.
"use strict";

// Copy buttons: <button class="copy" data-copy="ID"> copies the text of element ID.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(
    () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); },
    () => { button.textContent = "Copy failed"; },
  );
});

// Live import progress: the page names its event stream in data-events on #import-status.
function followImport() {
  const status = document.getElementById("import-status");
  if (!status || !status.dataset.events || !window.EventSource) return;
  const source = new EventSource(status.dataset.events);
  const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  source.addEventListener("snapshot", (event) => {
    const snap = JSON.parse(event.data);
    const progress = document.getElementById("import-progress");
    if (progress) { progress.value = snap.percent; progress.textContent = snap.percent + "%"; }
    set("import-state", snap.state);
    set("import-percent", snap.percent + "%");
    set("stat-bytes", snap.bytes);
    set("stat-blobs", snap.blobs);
    set("stat-manifests", snap.manifests);
    set("stat-rate", snap.rate);
    set("stat-eta", snap.eta);
    if (snap.error) { set("import-failure", snap.error); }
    if (snap.final) {
      source.close();
      const cancel = document.getElementById("cancel-import");
      if (cancel) cancel.hidden = true;
    }
  });
  source.onerror = () => { /* the browser reconnects by itself */ };
}
document.addEventListener("DOMContentLoaded", followImport);
