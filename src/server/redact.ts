/**
 * Scrubs secrets from text bound for a log: passwords in URLs (scheme://user:password@host),
 * secret query and key=value parameters (password, secret, token, key, signature…), bearer
 * tokens and cairn API tokens. Errors can quote a URL they failed on; the log must not keep it.
 */
export function scrubSecrets(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):[^\s@]*@/gi, '$1:***@')
    .replace(/\b((?:[a-z0-9_-]*(?:password|passwd|pwd|secret|token|signature|credential|sig|key))\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,"')]+)/gi, '$1***')
    .replace(/\bBearer\s+\S+/gi, 'Bearer ***')
    .replace(/\bcairn_([0-9a-f]{12})_[A-Za-z0-9_-]+/g, 'cairn_$1_***');
}
