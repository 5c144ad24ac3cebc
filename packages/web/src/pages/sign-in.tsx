/** Sign in with a token: checked against the core before it is kept for this tab's session. */
import { useState, type FormEvent } from 'react';
import { Api, ApiError } from '../api.js';
import { TOKEN_PATTERN } from '../session.js';

/** Why a token cannot be used, in the words an operator needs; undefined when it works. */
async function check(token: string): Promise<string | undefined> {
  if (!TOKEN_PATTERN.test(token)) {
    return 'This is not an ai-edge token: tokens look like aie_<16 hex digits>_<43 characters>. Create one with `aiedge core token create --admin`.';
  }
  try {
    await new Api(token).get('/api/v1/sites?limit=1');
    return undefined;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401)
      return `The core refused this token: ${error.message}.`;
    if (error instanceof ApiError && error.status === 403)
      return `This token cannot open the dashboard: ${error.message}. Sign in with an admin token.`;
    return `Cannot check the token: ${(error as Error).message}`;
  }
}

/** The sign-in page. */
export function SignIn(props: { onSignedIn: (token: string) => void; notice?: string | undefined }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    const trimmed = token.trim();
    const problem = await check(trimmed);
    setBusy(false);
    if (problem !== undefined) setError(problem);
    else props.onSignedIn(trimmed);
  };
  return (
    <main className="sign-in" id="main">
      <form
        className="card sign-in-card"
        onSubmit={(e) => void submit(e)}
        aria-labelledby="sign-in-title"
        noValidate
      >
        <div className="brand brand-large" aria-hidden="true">
          <span className="brand-mark" /> ai-edge
        </div>
        <h1 id="sign-in-title">Sign in to the core</h1>
        <p className="muted">
          Paste an admin token. It is kept for this browser tab only and sent to the core in a header, never
          in a URL.
        </p>
        {props.notice !== undefined && error === undefined && (
          <p className="notice" role="status">
            {props.notice}
          </p>
        )}
        <label htmlFor="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="aie_…"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={error !== undefined}
          aria-describedby={error !== undefined ? 'token-error' : undefined}
          required
        />
        {error !== undefined && (
          <p id="token-error" className="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p className="hint">
          No token? On the core&apos;s machine: <code>aiedge core token create --admin</code>
        </p>
      </form>
    </main>
  );
}
