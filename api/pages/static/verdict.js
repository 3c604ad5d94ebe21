// The verdict display and the API calls shared by the clerk page (/clerk/verify) and the public
// page (/v). Plain ES2020, no framework; text goes in with textContent only, never as HTML.
"use strict";

(function () {
  const VERDICTS = {
    valid: {
      zh: "有效",
      en: "Valid",
      explain: "证明真实，当前有效。",
      explainEn: "Genuine and currently valid.",
    },
    expired: {
      zh: "已过期",
      en: "Expired",
      explain: "证明真实，但已超过有效期，不能再作为证明使用。",
      explainEn: "Genuine, but past its validity period: it no longer proves anything.",
    },
    revoked: {
      zh: "已撤销",
      en: "Revoked",
      explain: "证明真实，但已被撤销，不得采信。",
      explainEn: "Genuine, but revoked: do not accept it.",
    },
    forged: {
      zh: "伪造或被篡改",
      en: "Forged or altered",
      explain: "签名不符：不是本系统出具的证明，或内容被改动过。不得采信。",
      explainEn: "The signature does not match: not issued by us, or altered. Do not accept it.",
    },
    unknown: {
      zh: "无法确认",
      en: "Cannot confirm",
      explain: "无法识别该二维码，或查不到这份证明的状态。",
      explainEn: "The QR code was not recognised, or this certificate's status cannot be found.",
    },
  };

  // [response field, Chinese label, English label, is a time]
  const FIELDS = [
    ["serial", "证明编号", "Serial number", false],
    ["type_label", "证明类型", "Type", false],
    ["holder", "持有人", "Holder", false],
    ["purpose_label", "用途", "Purpose", false],
    ["valid_from", "有效期自", "Valid from", true],
    ["valid_until", "有效期至", "Valid until", true],
    ["as_of", "登记信息截至", "Register as of", true],
  ];

  const BEIJING = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });

  const $ = (id) => document.getElementById(id);

  function formatTime(value) {
    if (typeof value !== "string" || value === "") return "—";
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return value; // a date: no time zone to convert
    const when = new Date(value);
    if (Number.isNaN(when.getTime())) return value;
    return `${BEIJING.format(when)} 北京时间 (UTC+8)`;
  }

  function bilingual(element, zh, en) {
    element.textContent = `${zh} `;
    const secondary = document.createElement("span");
    secondary.className = "en";
    secondary.textContent = en;
    element.append(secondary);
  }

  function addField(list, zh, en, value, isTime) {
    const term = document.createElement("dt");
    bilingual(term, zh, en);
    const detail = document.createElement("dd");
    if (isTime && typeof value === "string" && value !== "") {
      const time = document.createElement("time");
      time.dateTime = value;
      time.textContent = formatTime(value);
      detail.append(time);
    } else {
      detail.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    }
    list.append(term, detail);
  }

  /** Shows a verification response: {verdict, status_known_at, certificate: null | {...}}. */
  function show(body) {
    const verdict = Object.prototype.hasOwnProperty.call(VERDICTS, body && body.verdict)
      ? body.verdict
      : "unknown";
    const words = VERDICTS[verdict];
    const result = $("result");
    result.dataset.verdict = verdict;
    $("verdict").className = `verdict verdict-${verdict}`;
    $("verdict-zh").textContent = words.zh;
    $("verdict-en").textContent = words.en;
    bilingual($("verdict-explain"), words.explain, words.explainEn);
    const list = $("fields");
    list.replaceChildren();
    const certificate = body && body.certificate;
    if (certificate && typeof certificate === "object") {
      for (const [key, zh, en, isTime] of FIELDS) {
        let value = certificate[key];
        if (key === "type_label" && !value) value = certificate.type;
        if (key === "purpose_label" && !value) value = certificate.purpose;
        addField(list, zh, en, value, isTime);
      }
    }
    addField(list, "状态查询时间", "Status as of", body && body.status_known_at, true);
    result.hidden = false;
  }

  function hide() {
    const result = $("result");
    result.hidden = true;
    delete result.dataset.verdict;
  }

  /** A message above the form; kind "error" or "info"; an empty text hides it. */
  function notice(text, kind = "info") {
    const box = $("notice");
    box.textContent = text || "";
    box.className = `notice notice-${kind}`;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.hidden = !text;
  }

  /** POST JSON to our own API. Never throws: {ok, status, data}, status 0 when unreachable. */
  async function postJson(path, body, accessToken) {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json, application/problem+json",
    };
    if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
    }
    return { ok: response.ok, status: response.status, data };
  }

  /** The text to show for a failed call: the problem's detail (RFC 9457) and its code. */
  function problemText(result) {
    if (result.status === 0) return "无法连接服务器，请检查网络。 Cannot reach the server; check the network.";
    const problem = result.data && typeof result.data === "object" ? result.data : {};
    const detail = problem.detail || problem.title || `请求失败 Request failed (HTTP ${result.status})`;
    return problem.code ? `${detail} (${problem.code})` : detail;
  }

  window.EstateVerdict = Object.freeze({ show, hide, notice, postJson, problemText });
})();
