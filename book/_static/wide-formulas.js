// Formulas are not tab stops (course_site.py turns MathJax's "inTabOrder" off), except a
// display formula wider than its column: it scrolls sideways, and a keyboard user can only
// scroll what takes the focus (axe-core: scrollable-region-focusable).
function focusWideFormulas() {
  for (const math of document.querySelectorAll('mjx-container[display="true"]')) {
    if (math.scrollWidth > math.clientWidth + 1) {
      math.setAttribute("tabindex", "0");
    } else if (math.getAttribute("tabindex") === "0") {
      math.removeAttribute("tabindex");
    }
  }
  document.documentElement.dataset.formulas = "checked";
}
window.addEventListener("load", () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(focusWideFormulas);
  } else {
    focusWideFormulas();
  }
});
window.addEventListener("resize", focusWideFormulas);
