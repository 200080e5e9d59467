// Your profile (display name, bio, avatar) and the devices signed in to your account, each
// of which can be signed out. The header shows the new name as soon as it is saved. Then
// identity verification (KYC, for performers) and privacy: Do Not Sell, a data export,
// erasing the account.
import { api, get, post, patch, del } from "../api.js";
import { signedOut, updateUser } from "../auth.js";
import { h, replace, field, errorBox, toast, formatDate } from "../dom.js";
import { requireUser } from "../signin.js";

export async function render({ main, navigate }) {
  const me = requireUser(navigate);
  if (!me) return;
  document.title = "Settings · Stagecast";
  const [user, sessions, verifications, choices] = await Promise.all([
    get("users/me"), get("sessions", { limit: 50 }), get("kyc/verifications", { limit: 1 }),
    get("users/me/privacy"),
  ]);

  replace(
    main,
    h("section", { class: "page settings" },
      h("h1", {}, "Settings"),
      profileForm(user),
      sessionsPanel(sessions, navigate),
      kycPanel(verifications.data[0]),
      privacyPanel(choices, navigate),
    ),
  );
}

function profileForm(user) {
  const displayName = h("input", { name: "display_name", required: true, maxlength: 64, value: user.display_name, autocomplete: "nickname" });
  const bio = h("textarea", { name: "bio", rows: 3, maxlength: 500 }, user.bio || "");
  const avatar = h("input", { name: "avatar_url", type: "url", maxlength: 2000, value: user.avatar_url || "", placeholder: "https://…" });
  const preview = h("img", { class: "avatar", alt: "", width: 64, height: 64, hidden: !user.avatar_url, src: user.avatar_url || null });
  const errors = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Save profile");
  return h("form", {
    class: "panel stack",
    "aria-labelledby": "profile-title",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      submit.disabled = true;
      try {
        // Empty optional fields are cleared (null), not sent as empty strings.
        const saved = await patch("users/me", {
          display_name: displayName.value.trim(),
          bio: bio.value.trim() || null,
          avatar_url: avatar.value.trim() || null,
        });
        updateUser(saved);
        preview.hidden = !saved.avatar_url;
        if (saved.avatar_url) preview.src = saved.avatar_url;
        toast("Profile saved");
      } catch (error) {
        replace(errors, errorBox(error));
      } finally {
        submit.disabled = false;
      }
    },
  },
    h("h2", { id: "profile-title" }, "Profile"),
    h("p", { class: "muted" }, `@${user.username} · ${user.email}`),
    field("Display name", displayName, "Shown in chat and in the header instead of your username"),
    field("Bio", bio, "Up to 500 characters"),
    h("div", { class: "row" }, preview, field("Avatar URL", avatar, "An https address of an image")),
    errors,
    submit);
}

function sessionsPanel(first, navigate) {
  const list = h("ul", { class: "sessions" });
  // This device first, then the others newest first (the API's order).
  const show = (items) => replace(list, [...items].sort((a, b) => b.current - a.current).map((s) => {
    const end = h("button", { type: "button", class: "button small ghost" }, s.current ? "Sign out here" : "Sign out");
    end.addEventListener("click", async () => {
      end.disabled = true;
      try {
        if (s.current) {
          await post("auth/logout"); // also clears this browser's refresh cookie
          signedOut();
          toast("Signed out");
          navigate("/");
          return;
        }
        await post("sessions/logout", { session_id: s.id });
        toast("That session is signed out");
        show((await get("sessions", { limit: 50 })).data);
      } catch (error) {
        toast(error.message, "error");
        end.disabled = false;
      }
    });
    return h("li", { class: "session", dataset: { sessionId: s.id } },
      h("div", {},
        h("strong", {}, deviceName(s.user_agent)),
        s.current ? h("span", { class: "chip current" }, "This device") : null,
        h("p", { class: "muted" }, [s.ip, `signed in ${formatDate(s.created_at)}`, `last used ${formatDate(s.last_used_at)}`].filter(Boolean).join(" · "))),
      end);
  }));
  show(first.data);
  const everywhere = h("button", { type: "button", class: "button danger" }, "Sign out everywhere");
  everywhere.addEventListener("click", async () => {
    everywhere.disabled = true;
    try {
      await post("sessions/logout-all");
    } catch (error) {
      toast(error.message, "error");
      everywhere.disabled = false;
      return;
    }
    signedOut();
    toast("Signed out on every device");
    navigate("/");
  });
  return h("section", { class: "panel", "aria-labelledby": "sessions-title" },
    h("h2", { id: "sessions-title" }, "Signed-in devices"),
    h("p", { class: "muted" }, "Signing a device out ends its session at once; it has to sign in again."),
    list,
    everywhere);
}

// A short name for a User-Agent ("Chrome on Linux"); the whole string is too long to read.
function deviceName(agent) {
  if (!agent) return "Unknown device";
  const browser = /Edg\//.test(agent) ? "Edge"
    : /Firefox\//.test(agent) ? "Firefox"
    : /Chrom(e|ium)\//.test(agent) ? "Chrome"
    : /Safari\//.test(agent) ? "Safari"
    : /python|httpx|curl/i.test(agent) ? "A program"
    : "A browser";
  const system = /Android/.test(agent) ? "Android"
    : /iPhone|iPad/.test(agent) ? "iOS"
    : /Windows/.test(agent) ? "Windows"
    : /Mac OS X/.test(agent) ? "macOS"
    : /Linux/.test(agent) ? "Linux"
    : null;
  return system ? `${browser} on ${system}` : browser;
}

const KYC_STATUS = {
  pending: "Submitted: waiting for review",
  approved: "Verified",
  rejected: "Rejected",
};

// Identity verification: a performer's legal name, date of birth and a photo or scan of an
// ID. Payouts (and, if the operator says so, going live and tips) wait for an approval.
function kycPanel(latest) {
  const body = h("div", { class: "stack" });
  const panel = h("section", { class: "panel kyc", "aria-labelledby": "kyc-title" },
    h("h2", { id: "kyc-title" }, "Identity verification"),
    h("p", { class: "muted" }, "Performers verify their identity and age before payouts. Documents are encrypted and seen only by staff."),
    body);
  const show = (verification) => {
    const status = verification
      ? h("p", { class: `kyc-status ${verification.status}`, dataset: { status: verification.status } },
        h("strong", {}, KYC_STATUS[verification.status] || verification.status),
        verification.rejection_reason ? ` — ${verification.rejection_reason}` : "")
      : h("p", { class: "kyc-status none", dataset: { status: "none" } }, "Not verified yet");
    const canSubmit = !verification || verification.status === "rejected";
    replace(body, status, canSubmit ? kycForm(show) : null);
  };
  show(latest);
  return panel;
}

function kycForm(done) {
  const legalName = h("input", { name: "legal_name", required: true, minlength: 2, maxlength: 200, autocomplete: "name" });
  const born = h("input", { name: "date_of_birth", type: "date", required: true, autocomplete: "bday" });
  const files = h("input", { name: "documents", type: "file", required: true, multiple: true, accept: "image/jpeg,image/png,image/webp,image/heic,application/pdf" });
  const errors = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Submit for verification");
  return h("form", {
    class: "stack",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      submit.disabled = true;
      const form = new FormData();
      form.set("legal_name", legalName.value.trim());
      form.set("date_of_birth", born.value);
      for (const file of files.files) form.append("documents", file);
      try {
        done(await post("kyc/submit", form));
        toast("Documents submitted");
      } catch (error) {
        replace(errors, errorBox(error));
        submit.disabled = false;
      }
    },
  },
    field("Legal name", legalName, "As on your document"),
    field("Date of birth", born, "As on your document; performers must be adults"),
    field("Documents", files, "Photos or scans of an ID (JPEG, PNG, WebP, HEIC or PDF), up to 3"),
    errors,
    submit);
}

// Privacy: the Do Not Sell choice, a data export (its link comes as a notification), and
// erasing the account, which asks for the password.
function privacyPanel(choices, navigate) {
  const doNotSell = h("input", { type: "checkbox", name: "do_not_sell", checked: choices.do_not_sell });
  doNotSell.addEventListener("change", async () => {
    try {
      await post("users/me/privacy/opt-out", { do_not_sell: doNotSell.checked });
      toast(doNotSell.checked ? "We will not sell or share your data" : "Preference saved");
    } catch (error) {
      toast(error.message, "error");
      doNotSell.checked = !doNotSell.checked;
    }
  });
  const exports = h("ul", { class: "exports" });
  const showExports = async () => {
    const notes = await get("notifications", { limit: 50 });
    const ready = notes.data.filter((n) => n.kind === "privacy.export_ready");
    replace(exports, ready.map((n) => {
      const download = h("button", { type: "button", class: "button small" }, "Download");
      download.addEventListener("click", async () => {
        try {
          const archive = await api(n.payload.download_url, { blob: true });
          const link = h("a", { href: URL.createObjectURL(archive), download: `stagecast-export-${n.payload.export_id}.zip` });
          link.click();
          URL.revokeObjectURL(link.href);
        } catch (error) {
          toast(error.message, "error");
        }
      });
      return h("li", {}, `Export of ${formatDate(n.created_at)} (link until ${formatDate(n.payload.expires_at)}) `, download);
    }));
  };
  const ask = h("button", { type: "button", class: "button" }, "Export my data");
  ask.addEventListener("click", async () => {
    ask.disabled = true;
    try {
      await post("users/me/export");
      toast("Your export is being prepared; you will be notified");
      setTimeout(showExports, 2000);
    } catch (error) {
      toast(error.message, "error");
    } finally {
      ask.disabled = false;
    }
  });
  showExports();

  const password = h("input", { name: "erase_password", type: "password", required: true, autocomplete: "current-password" });
  const errors = h("div");
  const erase = h("button", { type: "submit", class: "button danger" }, "Delete my account");
  const eraseForm = h("form", {
    class: "stack",
    onsubmit: async (event) => {
      event.preventDefault();
      replace(errors);
      if (!window.confirm("Delete your account for good? This cannot be undone.")) return;
      erase.disabled = true;
      try {
        await del("users/me", { password: password.value });
      } catch (error) {
        replace(errors, errorBox(error));
        erase.disabled = false;
        return;
      }
      signedOut();
      toast("Your account was deleted");
      navigate("/");
    },
  },
    field("Password", password, "Deleting removes your profile and signs you out everywhere; tips and purchases stay in the books, anonymised"),
    errors,
    erase);

  return h("section", { class: "panel privacy", "aria-labelledby": "privacy-title" },
    h("h2", { id: "privacy-title" }, "Privacy"),
    h("label", { class: "row" }, doNotSell, " Do not sell or share my personal information"),
    h("p", { class: "muted" }, choices.global_privacy_control ? "Your browser sends Global Privacy Control: it counts as this choice." : "Global Privacy Control (Sec-GPC) from your browser counts as this choice too."),
    h("div", { class: "row" }, ask),
    exports,
    h("h3", {}, "Delete account"),
    eraseForm);
}
