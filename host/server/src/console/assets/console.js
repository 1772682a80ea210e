// Live thumbnails: each img[data-live] fetches its latest snapshot every
// data-refresh seconds (revalidating with its ETag) and shows a new one when
// it changed; data-updates counts the pictures shown.
"use strict";
(function () {
  function refresh(img) {
    var url = img.getAttribute("data-live");
    var headers = {};
    var etag = img.getAttribute("data-etag");
    if (etag) headers["If-None-Match"] = etag;
    fetch(url, { cache: "no-cache", headers: headers, credentials: "same-origin" })
      .then(function (r) {
        if (r.status !== 200) return null;
        var tag = r.headers.get("ETag");
        return r.blob().then(function (b) { return { blob: b, tag: tag }; });
      })
      .then(function (got) {
        if (!got) return;
        var old = img.getAttribute("data-object-url");
        var next = URL.createObjectURL(got.blob);
        img.onload = function () {
          if (old) URL.revokeObjectURL(old);
          img.setAttribute("data-updates", String(Number(img.getAttribute("data-updates") || "0") + 1));
        };
        img.setAttribute("data-object-url", next);
        if (got.tag) img.setAttribute("data-etag", got.tag);
        img.src = next;
      })
      .catch(function () { /* the next round tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("img[data-live]").forEach(function (img) {
      var seconds = Math.max(1, Number(img.getAttribute("data-refresh") || "5"));
      img.removeAttribute("src");
      refresh(img);
      setInterval(function () { refresh(img); }, Math.min(seconds, 5) * 1000);
    });
  });
})();
