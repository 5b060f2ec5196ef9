// roomtape: "Copy" buttons. A button with data-copy="ID" copies the text of element ID (made an
// absolute URL when the button has data-url) and says so in words, in a role=status element
// screen readers read out.
"use strict";

for (const b of document.querySelectorAll("button[data-copy]:not([data-ready])")) {
  b.dataset.ready = "1";
  const source = document.getElementById(b.dataset.copy);
  const said = document.getElementById(b.dataset.copy + "-copied");
  if (!source) continue;
  b.hidden = false;
  b.addEventListener("click", async () => {
    // A link is copied whole (with this server's address), whatever the page shows.
    const text = "url" in b.dataset ? new URL(source.textContent.trim(), location.href).href : source.textContent.trim();
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // No clipboard (an insecure origin, a refused permission): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(source);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
    if (said) said.textContent = ok ? "Copied." : "Selected: press Ctrl+C (Cmd+C on a Mac) to copy.";
  });
}
