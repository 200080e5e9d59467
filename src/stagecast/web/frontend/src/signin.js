// Pages for signed-in people send everyone else to sign in first.
import { currentUser } from "./auth.js";

export function requireUser(navigate) {
  const me = currentUser();
  if (!me) navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
  return me;
}
