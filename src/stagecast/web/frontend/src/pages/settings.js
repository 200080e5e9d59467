// Your profile (display name, bio, avatar) and the devices signed in to your account, each
// of which can be signed out. The header shows the new name as soon as it is saved.
import { get, post, patch } from "../api.js";
import { signedOut, updateUser } from "../auth.js";
import { h, replace, field, errorBox, toast, formatDate } from "../dom.js";
import { requireUser } from "../signin.js";

export async function render({ main, navigate }) {
  const me = requireUser(navigate);
  if (!me) return;
  document.title = "Settings · Stagecast";
  const [user, sessions] = await Promise.all([get("users/me"), get("sessions", { limit: 50 })]);

  replace(
    main,
    h("section", { class: "page settings" },
      h("h1", {}, "Settings"),
      profileForm(user),
      sessionsPanel(sessions, navigate),
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
