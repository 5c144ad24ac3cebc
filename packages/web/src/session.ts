/** The signed-in token: kept in sessionStorage (this tab, until it closes), never in a URL. */
const KEY = 'aiedge.token';

/** The token of this tab's session, if signed in. */
export function storedToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Keeps the token for this tab's session. */
export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

/** Forgets the token. */
export function clearToken(): void {
  sessionStorage.removeItem(KEY);
}

/** The shape of an ai-edge token (`aie_<16 hex>_<43 base64url>`). */
export const TOKEN_PATTERN = /^aie_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;
