/* Reload a page whose content is still changing (a job not yet final), unless the person is busy
 * with one of its forms. */
(function () {
  "use strict";
  const me = document.currentScript;
  const seconds = parseInt((me && me.dataset.seconds) || "5", 10);
  let touched = false;
  document.addEventListener("input", () => { touched = true; });
  setInterval(() => {
    const active = document.activeElement;
    if (touched || (active && ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(active.tagName))) return;
    window.location.reload();
  }, seconds * 1000);
})();
