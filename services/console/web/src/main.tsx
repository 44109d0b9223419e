// The console: sign-in, the shell (navigation, who is signed in), and the router.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { consoleApi, describeError, isUnauthenticated, storedToken, storeToken } from "./api";
import { SessionsPage } from "./sessions";
import { AuditPage, GatewaysPage, LocksPage, PoliciesPage, SessionDetail, TerminationsPage } from "./views";
import "./style.css";

export interface Me {
  subject: string;
  roles: string[];
  permissions: string[];
  authOff: boolean;
}

const NAV: Array<[string, string, string]> = [
  ["/", "Sessions", "sessions:read"],
  ["/terminations", "Terminations", "terminations:read"],
  ["/locks", "Locks", "policies:read"],
  ["/policies", "Policies", "policies:read"],
  ["/gateways", "Gateways", "sessions:read"],
  ["/audit", "Audit", "audit:read"],
];

async function whoAmI(): Promise<Me> {
  const response = await consoleApi.whoAmI({});
  return { subject: response.subject, roles: response.roles, permissions: response.permissions, authOff: response.authOff };
}

/** A sign-in link carries `#signin=<code>`: spend it once, then take it out of the address bar. */
async function exchangeLinkCode(): Promise<string | null> {
  const match = /(?:^|[#&])signin=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    const response = await consoleApi.exchangeSignInCode({ code: decodeURIComponent(match[1]) });
    storeToken(response.token);
    return null;
  } catch (error) {
    return `This sign-in link cannot be used: ${describeError(error)}`;
  }
}

function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(true);
  const [error, setError] = useState("");
  const [path, setPath] = useState(window.location.pathname);

  const check = async () => {
    setChecking(true);
    try {
      setMe(await whoAmI());
      setError("");
    } catch (failure) {
      setMe(null);
      const hadToken = storedToken() !== null;
      if (hadToken && isUnauthenticated(failure)) storeToken(null);
      // No token yet is not an error: the sign-in form is the answer.
      if (hadToken || !isUnauthenticated(failure)) setError(describeError(failure));
    } finally {
      setChecking(false);
    }
  };

  useEffect(() => {
    void (async () => {
      const linkError = await exchangeLinkCode();
      if (linkError) setError(linkError);
      if (storedToken() || !linkError) await check();
    })();
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  const navigate = (to: string) => {
    if (to !== window.location.pathname) history.pushState(null, "", to);
    setPath(to);
    window.scrollTo(0, 0);
  };
  const signOut = () => {
    storeToken(null);
    setMe(null);
    setError("");
  };
  const expired = () => {
    storeToken(null);
    setMe(null);
    setError("Your sign-in has expired or was refused; sign in again.");
  };

  if (checking && !me) return <div class="center muted">Loading…</div>;
  if (!me) return <SignIn error={error} onSignedIn={check} />;

  let page;
  const detail = /^\/sessions\/([^/]+)$/.exec(path);
  if (detail) page = <SessionDetail id={decodeURIComponent(detail[1])} me={me} navigate={navigate} />;
  else if (path === "/terminations") page = <TerminationsPage />;
  else if (path === "/locks") page = <LocksPage me={me} />;
  else if (path === "/policies") page = <PoliciesPage me={me} />;
  else if (path === "/gateways") page = <GatewaysPage />;
  else if (path === "/audit") page = <AuditPage />;
  else page = <SessionsPage me={me} navigate={navigate} onSignedOut={expired} />;

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href="/" onClick={(event) => { event.preventDefault(); navigate("/"); }}>
          <span class="dot" aria-hidden="true" /> Vigil
        </a>
        <nav aria-label="Views">
          {NAV.filter(([, , permission]) => me.permissions.includes(permission)).map(([to, label]) => (
            <a
              href={to}
              aria-current={path === to || (to === "/" && path.startsWith("/sessions")) ? "page" : undefined}
              onClick={(event) => {
                event.preventDefault();
                navigate(to);
              }}
            >
              {label}
            </a>
          ))}
        </nav>
        <div class="who" data-testid="who">
          <span title="Signed in as">{me.subject}</span>
          {(me.authOff ? ["authentication off"] : me.roles.length ? me.roles : ["no role"]).map((role) => (
            <span class="role" data-testid="role">
              {role}
            </span>
          ))}
          {!me.authOff && (
            <button class="btn" onClick={signOut} data-testid="sign-out">
              Sign out
            </button>
          )}
        </div>
      </header>
      <main>{page}</main>
    </div>
  );
}

function SignIn({ error, onSignedIn }: { error: string; onSignedIn: () => Promise<void> }) {
  const [token, setToken] = useState("");
  return (
    <div class="signin">
      <form
        class="signin-card"
        onSubmit={async (event) => {
          event.preventDefault();
          storeToken(token.trim());
          await onSignedIn();
        }}
      >
        <h1>
          <span class="dot" aria-hidden="true" /> Vigil
        </h1>
        <p>Sign in with the link <code>vigil run</code> printed, or paste a token (an API token or a JWT).</p>
        <label class="field">
          Token
          <textarea rows={4} value={token} onInput={(event) => setToken(event.currentTarget.value)} data-testid="token-input" autoFocus />
        </label>
        {error && (
          <p class="error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <button class="btn btn-primary" type="submit" disabled={!token.trim()} data-testid="sign-in">
          Sign in
        </button>
        <p class="muted small">The token stays in this tab only and is forgotten when you sign out or close it.</p>
      </form>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
