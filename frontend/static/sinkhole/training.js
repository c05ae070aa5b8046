// The run page polls its live URL every second while the run is queued or running: progress,
// phase (training step or evaluation progress, elapsed time and ETA), loss, the loss chart (SVG drawn and escaped by the server) and the log tail (as text).
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root) return;
  var url = root.getAttribute("data-live-url");
  var done = { succeeded: 1, failed: 1, cancelled: 1 };
  var status = root.getAttribute("data-status");
  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value;
  }
  function apply(data) {
    document.getElementById("run-progress").value = data.progress;
    text("run-phase", data.phase ? data.phase.text : "");
    text("run-loss", data.loss == null ? "" : "loss " + data.loss.toFixed(4));
    text("run-speed", data.tokens_per_second ? Math.round(data.tokens_per_second) + " tok/s" : "");
    var badge = document.getElementById("run-status");
    badge.textContent = data.status;
    badge.className = "status status-" + data.status;
    document.getElementById("run-chart").innerHTML = data.chart; // server-built SVG, labels escaped
    text("run-log", data.log_tail || "");
    var error = document.getElementById("run-error");
    error.textContent = data.error || "";
    error.hidden = !data.error;
    if (data.checkpoint) {
      var p = document.getElementById("run-checkpoint");
      p.textContent = "Checkpoint ";
      var a = document.createElement("a");
      a.href = "/checkpoints/" + encodeURIComponent(data.checkpoint) + "/";
      a.textContent = data.checkpoint;
      p.appendChild(a);
    }
    var cancel = document.getElementById("run-cancel");
    if (cancel && done[data.status]) cancel.closest("form").remove();
    else if (cancel && data.cancel_requested) { cancel.disabled = true; cancel.textContent = "Cancelling…"; }
    status = data.status;
    root.setAttribute("data-status", status);
  }
  function poll() {
    if (done[status]) return;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () {})
      .finally(function () { if (!done[status]) setTimeout(poll, 1000); });
  }
  if (!done[status]) setTimeout(poll, 1000);
})();
