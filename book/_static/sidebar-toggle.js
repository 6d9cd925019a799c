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
