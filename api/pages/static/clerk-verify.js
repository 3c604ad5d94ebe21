// /clerk/verify: a clerk signs in (POST /api/v1/auth/staff-tokens), then checks a scanned
// certificate (POST /api/v1/verifications, {"qr": text}). The access token is kept in this
// closure only: not in localStorage, sessionStorage or a cookie, so it ends with the tab.
"use strict";

(function () {
  const V = window.EstateVerdict;
  const $ = (id) => document.getElementById(id);
  let accessToken = null;
  let stream = null;
  let scanning = false;
  const canvas = document.createElement("canvas");

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  function showSignedIn(token) {
    accessToken = token;
    $("password").value = "";
    $("sign-in").hidden = true;
    $("check").hidden = false;
    $("qr-text").focus();
  }

  function showSignIn(message) {
    stopCamera();
    accessToken = null;
    V.hide();
    $("check").hidden = true;
    $("sign-in").hidden = false;
    $("password").value = "";
    V.notice(message || "", "error");
    $("username").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const username = $("username").value.trim();
    const password = $("password").value;
    if (!username || !password) {
      V.notice("请输入用户名和密码。 Enter your username and password.", "error");
      return;
    }
    const button = $("sign-in-button");
    busy(button, true);
    try {
      const result = await V.postJson("/api/v1/auth/staff-tokens", { username, password });
      if (result.ok && result.data && typeof result.data.access_token === "string") {
        V.notice("");
        showSignedIn(result.data.access_token);
      } else {
        V.notice(V.problemText(result), "error");
      }
    } finally {
      busy(button, false);
    }
  }

  async function signOut() {
    const token = accessToken;
    showSignIn("");
    if (token) await V.postJson("/api/v1/auth/logout", undefined, token); // best effort: revokes it
  }

  async function verify() {
    const text = $("qr-text").value.trim();
    if (!text) {
      V.notice("请先扫描或粘贴证明上的二维码内容。 Scan or paste the certificate's QR code first.", "error");
      $("qr-text").focus();
      return;
    }
    if (!accessToken) {
      showSignIn("请先登录。 Please sign in first.");
      return;
    }
    const button = $("verify-button");
    busy(button, true);
    V.hide();
    try {
      const result = await V.postJson("/api/v1/verifications", { qr: text }, accessToken);
      if (result.status === 401) {
        showSignIn(`登录已失效，请重新登录。 Your sign-in has ended; please sign in again. ${V.problemText(result)}`);
      } else if (!result.ok || !result.data) {
        V.notice(V.problemText(result), "error");
      } else {
        V.notice("");
        V.show(result.data);
        $("result").focus();
      }
    } finally {
      busy(button, false);
    }
  }

  function cameraMessage(text) {
    const box = $("camera-message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function stopCamera() {
    scanning = false;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    $("camera-video").srcObject = null;
    $("camera").hidden = true;
    $("camera-button").disabled = false;
  }

  const CAMERA_ERRORS = {
    NotAllowedError: "未获准使用摄像头：请在浏览器中允许本网站使用摄像头。 Camera permission was denied.",
    NotFoundError: "没有找到摄像头。 No camera was found.",
    NotReadableError: "摄像头正被其他程序使用。 The camera is in use by another program.",
    OverconstrainedError: "没有合适的摄像头。 No suitable camera was found.",
  };

  async function startCamera() {
    cameraMessage("");
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraMessage(
        "摄像头只能在 https 或 localhost 打开的页面中使用；请改用扫码枪或粘贴文本。 " +
          "The camera works only on pages opened over https or on localhost; use a scanner or paste the text.",
      );
      return;
    }
    if (typeof window.jsQR !== "function") {
      cameraMessage("二维码识别组件未能加载。 The QR decoder did not load.");
      return;
    }
    $("camera-button").disabled = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" } },
        audio: false,
      });
    } catch (error) {
      $("camera-button").disabled = false;
      cameraMessage(CAMERA_ERRORS[error && error.name] || `无法打开摄像头。 Cannot open the camera. (${error})`);
      return;
    }
    const video = $("camera-video");
    video.srcObject = stream;
    $("camera").hidden = false;
    try {
      await video.play();
    } catch (error) {
      stopCamera();
      cameraMessage(`无法播放摄像头画面。 Cannot show the camera. (${error})`);
      return;
    }
    cameraMessage("请将证明上的二维码对准摄像头。 Hold the certificate's QR code in front of the camera.");
    scanning = true;
    window.requestAnimationFrame(scanFrame);
  }

  function scanFrame() {
    if (!scanning) return;
    const video = $("camera-video");
    if (video.readyState >= video.HAVE_ENOUGH_DATA && video.videoWidth > 0) {
      // Decode a frame of at most 800 px: enough for a QR code held to the camera, and fast.
      const scale = Math.min(1, 800 / Math.max(video.videoWidth, video.videoHeight));
      const width = Math.round(video.videoWidth * scale);
      const height = Math.round(video.videoHeight * scale);
      canvas.width = width;
      canvas.height = height;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(video, 0, 0, width, height);
      const image = context.getImageData(0, 0, width, height);
      const code = window.jsQR(image.data, width, height, { inversionAttempts: "dontInvert" });
      if (code && code.data) {
        $("qr-text").value = code.data;
        stopCamera();
        cameraMessage("");
        verify();
        return;
      }
    }
    window.requestAnimationFrame(scanFrame);
  }

  function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("verify-form").addEventListener("submit", (event) => {
      event.preventDefault();
      verify();
    });
    $("sign-out").addEventListener("click", signOut);
    $("camera-button").addEventListener("click", startCamera);
    $("camera-stop").addEventListener("click", () => {
      stopCamera();
      cameraMessage("");
    });
    $("result").tabIndex = -1;
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) stopCamera();
    });
    $("username").focus();
  }

  start();
})();
