/** Rendering of untrusted values for error messages. */

/**
 * A short, single-line rendering of any value for an error message. Never throws, whatever the
 * input (deeply nested arrays, cycles, BigInt), and never prints more than `maxLength` characters.
 */
export function describeValue(value: unknown, maxLength = 60): string {
  if (value === undefined) return 'missing';
  let text: string;
  try {
    text =
      typeof value === 'bigint'
        ? value.toString()
        : (JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ??
          String(value));
  } catch {
    text = Array.isArray(value)
      ? '[[[[[… (nested too deeply to show)'
      : typeof value === 'object'
        ? '{…}'
        : String(value);
  }
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
}
