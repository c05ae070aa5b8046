// The leaderboard page: outline the row and column of the win-rate cell under the pointer.
(function () {
  "use strict";
  var table = document.querySelector(".lb-matrix");
  if (!table) return;
  function mark(cell, on) {
    var row = cell.parentElement;
    var index = Array.prototype.indexOf.call(row.children, cell);
    row.classList.toggle("lb-hover", on);
    table.querySelectorAll("tr").forEach(function (tr) {
      var c = tr.children[index];
      if (c) c.classList.toggle("lb-hover", on);
    });
  }
  table.addEventListener("mouseover", function (e) {
    var cell = e.target.closest("td");
    if (cell) mark(cell, true);
  });
  table.addEventListener("mouseout", function (e) {
    var cell = e.target.closest("td");
    if (cell) mark(cell, false);
  });
})();
