// The version page while it builds: poll the progress URL every second, move the bar, and
// reload the page once the build has finished (the stats card and downloads are then there).
(function () {
  "use strict";
  var live = document.getElementById("ds-live");
  if (!live) return;
  var bar = live.querySelector(".progress");
  var fill = live.querySelector(".progress > span");
  var message = document.getElementById("ds-message");
  var status = document.getElementById("ds-status");
  function poll() {
    fetch(live.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        var pct = Math.round((data.progress || 0) * 100);
        fill.style.width = pct + "%";
        bar.setAttribute("aria-valuenow", String(pct));
        message.textContent = data.message || "";  // text, never markup
        status.textContent = data.status;
        status.className = "badge " + data.status;
        if (data.status === "succeeded" || data.status === "failed") {
          window.location.reload();
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
