/**
 * Parameter names as a URL parser reads them, for redaction: `pass%77ord=` is read as
 * `password=` (URLSearchParams decodes names), so a scrubber that matches names as written would
 * let its value through. Only escapes that decode to a letter, digit, "_" or "-" are decoded:
 * those are the ones that can spell a secret's name; every other escape stays as written.
 */
const NAME_BEFORE_EQUALS = /[A-Za-z0-9_%.+-]*%[0-9A-Fa-f]{2}[A-Za-z0-9_%.+-]*(?=\s*[=:])/g;

/** `text` with the percent-escapes in every `name=` / `name:` decoded (see above); else unchanged. */
export function decodeParamNames(text: string): string {
  return text.replace(NAME_BEFORE_EQUALS, (name) =>
    name.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
      const c = String.fromCharCode(parseInt(hex, 16));
      return /[A-Za-z0-9_-]/.test(c) ? c : escape;
    }),
  );
}
