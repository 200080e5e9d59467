// Sign in and sign up.
import { post } from "../api.js";
import { signedIn } from "../auth.js";
import { h, replace, field, errorBox, toast } from "../dom.js";

export async function render({ main, mode, query, navigate }) {
  const signup = mode === "signup";
  document.title = `${signup ? "Sign up" : "Sign in"} · Stagecast`;
  const next = safeNext(query.get("next"));
  const errors = h("div", { class: "form-errors" });
  const inputs = signup
    ? {
        username: h("input", { name: "username", required: true, autocomplete: "username", minlength: 3, maxlength: 25, pattern: "[A-Za-z0-9_]+" }),
        email: h("input", { name: "email", type: "email", required: true, autocomplete: "email" }),
        password: h("input", { name: "password", type: "password", required: true, autocomplete: "new-password", minlength: 10 }),
      }
    : {
        login: h("input", { name: "login", required: true, autocomplete: "username" }),
        password: h("input", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
      };
  const submit = h("button", { type: "submit", class: "button primary" }, signup ? "Create account" : "Sign in");

  async function onSubmit(event) {
    event.preventDefault();
    replace(errors);
    submit.disabled = true;
    try {
      let pair;
      if (signup) {
        pair = await post("auth/register", {
          username: inputs.username.value.trim(),
          email: inputs.email.value.trim(),
          password: inputs.password.value,
        });
      } else {
        const login = inputs.login.value.trim();
        pair = await post("auth/login", {
          [login.includes("@") ? "email" : "username"]: login,
          password: inputs.password.value,
        });
      }
      signedIn(pair);
      toast(signup ? `Welcome to Stagecast, ${pair.user.username}!` : `Signed in as ${pair.user.username}`);
      navigate(next, { replace: true });
    } catch (error) {
      replace(errors, errorBox(error));
      errors.querySelector("[role=alert]")?.focus?.();
    } finally {
      submit.disabled = false;
    }
  }

  replace(
    main,
    h(
      "section",
      { class: "panel narrow" },
      h("h1", {}, signup ? "Create your account" : "Sign in"),
      h(
        "form",
        { class: "stack", onsubmit: onSubmit, novalidate: false },
        signup
          ? [
              field("Username", inputs.username, "3–25 letters, digits or underscores; your channel's address"),
              field("Email", inputs.email),
              field("Password", inputs.password, "At least 10 characters, mixing letters, digits or symbols"),
            ]
          : [field("Email or username", inputs.login), field("Password", inputs.password)],
        errors,
        submit,
      ),
      h(
        "p",
        { class: "muted" },
        signup ? "Already have an account? " : "New here? ",
        h("a", { href: `${signup ? "/login" : "/signup"}${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}` }, signup ? "Sign in" : "Create an account"),
      ),
    ),
  );
}

// Only paths of this site, so a link cannot send people elsewhere after signing in.
function safeNext(value) {
  return value && value.startsWith("/") && !value.startsWith("//") ? value : "/";
}
