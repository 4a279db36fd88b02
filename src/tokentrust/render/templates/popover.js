// Token popovers (the alternatives of a coloured token), shared by the web page and the HTML fragments of
// notebooks and reports. Without this script, CSS shows a token's .tt-tip on hover and on focus (tokens
// are focusable: click, tap or Tab). With it: Enter or Space toggles the popover of the focused token,
// Escape closes it, a click on an open token closes it, and the popover is placed with fixed coordinates
// inside the viewport (below the token, or above when there is no room), so neither the window edge nor a
// scrolling notebook output cell cuts it. Installs once per document, whatever the number of fragments.
(function () {
  "use strict";
  if (window.__ttPopover) return;
  window.__ttPopover = true;
  const MARGIN = 4;

  function tokenOf(node) {
    return node && node.closest ? node.closest(".tt-tok") : null;
  }
  function place(tok) {
    const tip = tok.querySelector(":scope > .tt-tip");
    if (!tip) return;
    tip.style.position = "fixed";
    tip.style.left = "0px";
    tip.style.top = "0px";
    tip.style.maxWidth = (window.innerWidth - 2 * MARGIN) + "px";
    const r = tok.getBoundingClientRect();
    const w = tip.offsetWidth, h = tip.offsetHeight;
    const left = Math.max(MARGIN, Math.min(r.left, window.innerWidth - w - MARGIN));
    let top = r.bottom + 2;
    if (top + h > window.innerHeight - MARGIN) top = Math.max(MARGIN, r.top - h - 2);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }
  function setOpen(tok, open) {
    tok.classList.toggle("tt-shut", !open);
    tok.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) place(tok);
  }
  function isOpen(tok) {
    return !tok.classList.contains("tt-shut") && (tok.matches(":hover") || tok.contains(document.activeElement));
  }
  let focusedBefore = null;  // the token that had focus before this mouse press (a second click closes it)

  document.addEventListener("mouseover", (e) => {
    const tok = tokenOf(e.target);
    if (tok && !tok.contains(e.relatedTarget)) place(tok);
  });
  document.addEventListener("mouseout", (e) => {
    const tok = tokenOf(e.target);
    if (tok && !tok.contains(e.relatedTarget) && tok !== document.activeElement) tok.classList.remove("tt-shut");
  });
  document.addEventListener("focusin", (e) => {
    const tok = tokenOf(e.target);
    if (tok) setOpen(tok, true);
  });
  document.addEventListener("focusout", (e) => {
    const tok = tokenOf(e.target);
    if (tok && !tok.contains(e.relatedTarget)) {
      tok.classList.remove("tt-shut");
      tok.setAttribute("aria-expanded", "false");
    }
  });
  document.addEventListener("mousedown", (e) => {
    focusedBefore = tokenOf(e.target) === document.activeElement ? document.activeElement : null;
  });
  document.addEventListener("click", (e) => {
    const tok = tokenOf(e.target);
    if (!tok || e.target.closest(".tt-tip")) return;
    if (tok !== document.activeElement) tok.focus();
    else if (tok === focusedBefore) setOpen(tok, !isOpen(tok));
  });
  document.addEventListener("keydown", (e) => {
    const tok = tokenOf(e.target);
    if (!tok) return;
    if (e.key === "Escape") {
      setOpen(tok, false);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      setOpen(tok, !isOpen(tok));
    }
  });
  window.addEventListener("scroll", () => {
    const tok = tokenOf(document.activeElement);
    if (tok) place(tok);
  }, true);
})();
