// The experiments pages: refresh a running experiment's results every 2 s (an HTML fragment the
// server renders, escaped there), and ask before deleting.
(function () {
  "use strict";
  var box = document.querySelector("[data-poll]");
  if (box) {
    var url = box.getAttribute("data-poll");
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) box.innerHTML = html; })
        .catch(function () {})
        .then(function () { busy = false; });
    }, 2000);
  }
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
