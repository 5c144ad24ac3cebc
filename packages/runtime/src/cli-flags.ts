/** Parsers for command-line values (commander), shared by every aiedge verb; errors name the value and what was expected. */
import { InvalidArgumentError } from 'commander';

/** Parses a non-negative integer flag value. */
export function integer(value: string): number {
  if (!/^\d{1,15}$/.test(value.trim()))
    throw new InvalidArgumentError(`'${value}' is not a non-negative integer.`);
  return Number(value.trim());
}

/** Parses a non-negative number flag value. */
export function nonNegativeNumber(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`'${value}' is not a non-negative number.`);
  }
  return n;
}

/** Parses a byte size: a plain integer or one with a unit (k, m, g; KiB-based, e.g. 64m). */
export function byteSize(value: string): number {
  const match = /^(\d{1,15})\s*([kmg]i?b?)?$/i.exec(value.trim());
  if (match === null) throw new InvalidArgumentError(`'${value}' is not a byte size such as 1048576 or 64m.`);
  const unit = (match[2] ?? '').toLowerCase()[0];
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(match[1]) * factor;
}

/** Collects a repeated flag into a list. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
