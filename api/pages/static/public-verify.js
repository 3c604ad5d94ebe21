// /v#<token>: the page a phone opens from a certificate's QR code. It sends the fragment (which the
// browser never sends to a server by itself) to POST /api/v1/public/verifications, no sign-in.
"use strict";

(function () {
  const V = window.EstateVerdict;
  const $ = (id) => document.getElementById(id);
  let asked = 0;

  function tokenFromFragment() {
    const raw = window.location.hash.slice(1).trim();
    if (!raw) return "";
    try {
      return decodeURIComponent(raw);
    } catch (error) {
      return raw;
    }
  }

  async function check() {
    const token = tokenFromFragment();
    const attempt = ++asked;
    V.hide();
    V.notice("");
    $("how-to").hidden = Boolean(token);
    if (!token) return;
    $("checking").hidden = false;
    const result = await V.postJson("/api/v1/public/verifications", { qr: token });
    if (attempt !== asked) return; // the fragment changed meanwhile: that check shows instead
    $("checking").hidden = true;
    if (result.ok && result.data) {
      V.show(result.data);
    } else {
      V.notice(V.problemText(result), "error");
    }
  }

  window.addEventListener("hashchange", check);
  check();
})();
