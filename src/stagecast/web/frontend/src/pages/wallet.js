// The wallet: balance, buying tokens through the configured provider, and the history.
// The development sandbox's checkout is a POST, so its "payment page" is a confirm step
// here; real providers (Stripe, Hyperswitch) send the browser to their own checkout.
import { get, post } from "../api.js";
import { h, replace, errorBox, toast, formatNumber, formatTokens, formatMoney, formatDate } from "../dom.js";
import { requireUser } from "../signin.js";

const SANDBOX_CHECKOUT = /\/api\/v1\/wallet\/sandbox\/checkout\/([0-9a-f-]+)$/;

export async function render({ main, navigate, query }) {
  const me = requireUser(navigate);
  if (!me) return;
  document.title = "Wallet · Stagecast";
  const [balance, packages, history] = await Promise.all([
    get("wallet/balance"),
    get("wallet/packages"),
    get("wallet/transactions", { limit: 20 }),
  ]);
  const balanceText = h("strong", { class: "stat-value", id: "token-balance" }, formatTokens(balance.token_balance));
  const checkout = h("div", { class: "checkout", "aria-live": "polite" });
  const rows = h("tbody");
  const more = h("button", { type: "button", class: "button small", hidden: !history.has_more }, "Show more");
  let cursor = history.next_cursor;

  const addRows = (items) => rows.append(...items.map((t) => h("tr", {},
    h("td", {}, formatDate(t.created_at)),
    h("td", {}, t.description || t.transaction_type),
    h("td", { class: t.amount_tokens < 0 ? "negative" : "positive" }, `${t.amount_tokens > 0 ? "+" : ""}${formatNumber(t.amount_tokens)}`),
    h("td", {}, t.account),
    h("td", {}, formatNumber(t.balance_after)))));
  addRows(history.data);
  more.addEventListener("click", async () => {
    const page = await get("wallet/transactions", { limit: 20, cursor });
    addRows(page.data);
    cursor = page.next_cursor;
    more.hidden = !page.has_more;
  });

  async function refreshBalance() {
    const fresh = await get("wallet/balance");
    balanceText.textContent = formatTokens(fresh.token_balance);
    const page = await get("wallet/transactions", { limit: 20 });
    rows.replaceChildren();
    addRows(page.data);
    cursor = page.next_cursor;
    more.hidden = !page.has_more;
  }

  async function buy(pack, button) {
    replace(checkout);
    button.disabled = true;
    try {
      const purchase = await post("wallet/buy", { tokens: pack.tokens }, { moves: true });
      const sandbox = purchase.checkout_url?.match(SANDBOX_CHECKOUT);
      if (sandbox) {
        showSandboxCheckout(purchase, sandbox[1]);
      } else if (purchase.checkout_url) {
        location.assign(purchase.checkout_url);
      }
    } catch (error) {
      replace(checkout, errorBox(error));
    } finally {
      button.disabled = false;
    }
  }

  function showSandboxCheckout(purchase, purchaseId) {
    const confirmButton = h("button", { type: "button", class: "button primary" }, `Pay ${formatMoney(purchase.amount_cents, purchase.currency)}`);
    const cancel = h("button", { type: "button", class: "button ghost", onclick: () => replace(checkout) }, "Cancel");
    confirmButton.addEventListener("click", async () => {
      confirmButton.disabled = true;
      try {
        const paid = await post(`wallet/sandbox/checkout/${purchaseId}`);
        replace(checkout, h("p", { class: "success" }, `Paid: ${formatTokens(paid.tokens)} added to your wallet.`));
        toast(`${formatTokens(paid.tokens)} added`);
        await refreshBalance();
      } catch (error) {
        replace(checkout, errorBox(error));
      }
    });
    replace(
      checkout,
      h("section", { class: "panel sandbox", "aria-labelledby": "sandbox-title" },
        h("h2", { id: "sandbox-title" }, "Sandbox checkout"),
        h("p", {}, `Buy ${formatTokens(purchase.tokens)} for ${formatMoney(purchase.amount_cents, purchase.currency)}.`),
        h("p", { class: "muted" }, "This server uses the development sandbox: no money moves, and the tokens are only for trying things out."),
        h("div", { class: "row" }, confirmButton, cancel)),
    );
    confirmButton.focus();
  }

  const outcome = query.get("purchase");
  replace(
    main,
    h("section", { class: "page wallet" },
      h("h1", {}, "Wallet"),
      outcome === "done" ? h("p", { class: "success", role: "status" }, "Thank you! Your tokens arrive as soon as the payment is confirmed.") : null,
      outcome === "cancelled" ? h("p", { class: "muted", role: "status" }, "The purchase was cancelled; nothing was charged.") : null,
      h("div", { class: "stats" },
        h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Balance"), balanceText),
        balance.earnings_balance
          ? h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Earnings"), h("strong", { class: "stat-value" }, formatTokens(balance.earnings_balance)))
          : null),
      h("section", { class: "panel", "aria-labelledby": "buy-title" },
        h("h2", { id: "buy-title" }, "Buy tokens"),
        h("div", { class: "packages" }, packages.packages.map((pack) => {
          const button = h("button", { type: "button", class: "button package", dataset: { tokens: pack.tokens } },
            h("strong", {}, formatTokens(pack.tokens)), h("span", {}, formatMoney(pack.amount_cents, packages.currency)));
          button.addEventListener("click", () => buy(pack, button));
          return button;
        })),
        checkout),
      h("section", { class: "panel", "aria-labelledby": "history-title" },
        h("h2", { id: "history-title" }, "History"),
        h("div", { class: "table-scroll" },
          h("table", { class: "table" },
            h("caption", { class: "visually-hidden" }, "Wallet history"),
            h("thead", {}, h("tr", {}, ["When", "What", "Tokens", "Account", "Balance after"].map((t) => h("th", { scope: "col" }, t)))),
            rows)),
        history.data.length ? null : h("p", { class: "empty" }, "Nothing yet."),
        more),
    ),
  );
}
