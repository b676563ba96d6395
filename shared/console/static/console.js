// Live regions: an element with data-live (a server-sent events URL) and data-fragment (a URL
// of its fresh HTML) is refetched whenever the server says what it shows has changed.
"use strict";

function follow(element) {
  const source = new EventSource(element.dataset.live);
  let fetching = false;
  let again = false;
  async function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const response = await fetch(element.dataset.fragment, { credentials: "same-origin" });
      const html = response.ok ? await response.text() : null;
      // A page drawn before its workflow existed reloads once it does, to get its forms.
      if (html !== null && element.dataset.reloadWhen) {
        const probe = document.createElement("div");
        probe.innerHTML = html;
        if (probe.querySelector(element.dataset.reloadWhen)) { window.location.reload(); return; }
      }
      // Keep what a user is typing into a form inside the region: skip while it has focus.
      const focused = document.activeElement && document.activeElement.closest("form");
      if (html !== null && !element.contains(focused)) {
        element.innerHTML = html;
      }
    } finally {
      fetching = false;
      if (again) { again = false; refresh(); }
    }
  }
  source.addEventListener("change", refresh);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live][data-fragment]").forEach(follow);
});
