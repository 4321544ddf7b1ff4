// Loaded by <script src="/js/app.js"> on the home page.
document.addEventListener("DOMContentLoaded", function () {
  var p = document.createElement("p");
  p.textContent = "app.js loaded";
  document.body.appendChild(p);
});
