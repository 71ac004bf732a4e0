// Keeps the overview and the charts live: every data-every ms, the element's fragment
// (data-refresh) is fetched again and put in its place. A failed fetch is tried again.
"use strict";
for (const element of document.querySelectorAll("[data-refresh]")) {
  const every = Number(element.dataset.every) || 2000;
  const refresh = async () => {
    try {
      const response = await fetch(element.dataset.refresh, { credentials: "same-origin" });
      if (response.ok) element.innerHTML = await response.text();
    } finally {
      setTimeout(refresh, every);
    }
  };
  setTimeout(refresh, every);
}
