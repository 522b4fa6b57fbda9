// The token pair and the login name, kept for this browser tab only (sessionStorage).
const TOKENS = 'wangban.console.tokens'
const USERNAME = 'wangban.console.username'

export type Tokens = { access: string; refresh: string }

export function readTokens(): Tokens | null {
  try {
    const raw = sessionStorage.getItem(TOKENS)
    if (!raw) return null
    const parsed = JSON.parse(raw) as Partial<Tokens>
    if (typeof parsed.access === 'string' && typeof parsed.refresh === 'string') {
      return { access: parsed.access, refresh: parsed.refresh }
    }
  } catch {
    // unreadable: treated as logged out
  }
  return null
}

export function writeTokens(tokens: Tokens): void {
  sessionStorage.setItem(TOKENS, JSON.stringify(tokens))
}

export function readUsername(): string | null {
  return sessionStorage.getItem(USERNAME)
}

export function writeUsername(username: string): void {
  sessionStorage.setItem(USERNAME, username)
}

export function clearSession(): void {
  sessionStorage.removeItem(TOKENS)
  sessionStorage.removeItem(USERNAME)
}
