// The visible "Toggle primary/secondary sidebar" buttons do nothing with pydata-sphinx-theme
// 0.17: the themes bind their click handlers to the FIRST element of each class, a second
// button hidden in the top bar (pydata-sphinx-theme issue 2451). Forward the clicks of the
// other buttons to that one, so the themes' own code runs: a drawer on phones, hide/show on
// desktop.
document.addEventListener("DOMContentLoaded", () => {
  for (const kind of ["primary", "secondary"]) {
    const [bound, ...others] = document.querySelectorAll(`button.${kind}-toggle`);
    for (const button of others) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        bound.click();
      });
    }
  }
});

// The chapter list opens a chapter's sections with a <summary> that holds only an icon, so a
// screen reader announces a nameless control (axe-core: summary-name). Name it.
document.addEventListener("DOMContentLoaded", () => {
  for (const summary of document.querySelectorAll(".bd-sidebar details > summary")) {
    const link = summary.parentElement.previousElementSibling;
    const title = link ? link.textContent.trim() : "this part";
    summary.setAttribute("aria-label", `Sections of ${title}`);
  }
});
