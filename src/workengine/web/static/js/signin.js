// The sign-in page: says so when the last attempt failed (the server sends ?failed=1 back).
if (new URLSearchParams(window.location.search).has("failed")) {
  document.getElementById("failed").hidden = false;
}
