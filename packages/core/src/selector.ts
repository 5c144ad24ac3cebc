/** Label selectors as Kubernetes writes them: `k=v`, `k==v`, `k!=v`, `k` (exists), `!k` (absent), comma-joined. */
import { InputError, describeValue } from '@aiedge/protocol';

/** One requirement of a selector. */
export type Requirement =
  | { readonly op: 'eq' | 'ne'; readonly key: string; readonly value: string }
  | { readonly op: 'exists' | 'absent'; readonly key: string };

const KEY = /^([a-z0-9.-]{1,253}\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Parses a selector; `what` names it in errors (e.g. `querystring.selector`). */
export function parseSelector(text: string, what = 'selector'): Requirement[] {
  if (text.trim() === '') return [];
  return text.split(',').map((raw, i) => {
    const part = raw.trim();
    const bad = (why: string) =>
      new InputError(`${what} term ${i + 1} ${describeValue(part)}: ${why} (expected k=v, k!=v, k or !k)`);
    let m = /^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/.exec(part);
    if (m !== null) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      if (!KEY.test(key)) throw bad(`label key ${describeValue(key)} is not valid`);
      return { op: op === '!=' ? 'ne' : 'eq', key, value };
    }
    m = /^(!?)([^=!\s]+)$/.exec(part);
    if (m !== null) {
      const [, not, key] = m as unknown as [string, string, string];
      if (!KEY.test(key)) throw bad(`label key ${describeValue(key)} is not valid`);
      return { op: not === '!' ? 'absent' : 'exists', key };
    }
    throw bad('not a label requirement');
  });
}

/** True when `labels` satisfy every requirement. */
export function matchesSelector(
  requirements: readonly Requirement[],
  labels: Readonly<Record<string, string>>,
): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'eq':
        return has && labels[r.key] === r.value;
      case 'ne':
        return !has || labels[r.key] !== r.value;
      case 'exists':
        return has;
      case 'absent':
        return !has;
    }
  });
}
