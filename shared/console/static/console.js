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
      // Keep what a user is typing into a form inside the region: skip while it has focus.
      if (response.ok && !element.contains(document.activeElement.closest("form"))) {
        element.innerHTML = await response.text();
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
