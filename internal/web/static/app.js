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
  // A form[data-chunked=n] with a file posts the file n lines at a time
  // (the header line repeated) and shows its progress.
  document.querySelectorAll("form[data-chunked]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      var input = form.querySelector("input[type=file]");
      if (!input.files.length || !window.fetch) return;
      e.preventDefault();
      var per = parseInt(form.getAttribute("data-chunked"), 10) || 500;
      var bar = form.querySelector("progress"), status = form.querySelector("[role=status]");
      input.files[0].text().then(function (text) {
        var lines = text.split(/\r?\n/).filter(function (l) { return l.trim() !== ""; });
        var header = lines.length && /(^|,)\s*value\s*(,|$)/.test(lines[0]) ? lines.shift() + "\n" : "";
        var total = lines.length, done = 0, added = 0, errors = [];
        bar.hidden = false; bar.max = Math.max(total, 1); bar.value = 0;
        function next() {
          if (done >= total) {
            var msg = "imported " + added + " entries" + (errors.length ? "; " + errors.length + " refused, first: " + errors[0] : "");
            location.assign(location.pathname + "?" + (errors.length ? "error=" : "flash=") + encodeURIComponent(msg));
            return;
          }
          var chunk = lines.slice(done, done + per);
          var fd = new FormData(form);
          fd.delete("file");
          fd.set("entries", header + chunk.join("\n"));
          fetch(form.action, { method: "POST", body: fd, credentials: "same-origin", headers: { "Accept": "application/json" } })
            .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
            .then(function (res) {
              added += res.added; errors = errors.concat(res.errors);
              done += chunk.length; bar.value = done;
              status.textContent = done + " of " + total + " lines, " + added + " added";
              next();
            })
            .catch(function (err) { status.textContent = "import stopped: " + err.message; });
        }
        next();
      });
    });
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
