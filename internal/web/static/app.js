// posthorn dashboard: live refresh of [data-live] parts, select-all
// checkboxes, confirmations and copy buttons. No dependencies.
"use strict";
(function () {
  // A [data-live=ms] element is re-rendered from the same URL every ms
  // milliseconds (the server renders; nothing here builds HTML).
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var every = parseInt(el.getAttribute("data-live"), 10) || 5000;
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById(el.id);
          if (fresh) el.replaceChildren.apply(el, Array.from(fresh.childNodes).map(function (n) { return document.adoptNode(n); }));
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }, every);
  });
  document.addEventListener("change", function (e) {
    var name = e.target.getAttribute && e.target.getAttribute("data-select-all");
    if (!name) return;
    e.target.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (c) { c.checked = e.target.checked; });
  });
  document.addEventListener("submit", function (e) {
    var src = e.submitter && e.submitter.getAttribute("data-confirm") ? e.submitter : e.target;
    var msg = src.getAttribute("data-confirm");
    if (msg && !confirm(msg)) e.preventDefault();
  });
  document.addEventListener("click", function (e) {
    var id = e.target.getAttribute && e.target.getAttribute("data-copy");
    if (!id) return;
    var el = document.getElementById(id);
    if (el && navigator.clipboard) navigator.clipboard.writeText(el.textContent);
  });
})();
