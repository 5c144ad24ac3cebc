/** Validation of untrusted values against TypeBox schemas, with errors that name the path and value. */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import { InputError } from './errors.js';
import { describeValue } from './values.js';

const ajv = new Ajv({ allErrors: false, strict: true, useDefaults: false });
const compiled = new WeakMap<TSchema, ValidateFunction>();

/**
 * How the failing path joins the name of what was validated: `document` for a file or a set of
 * options (`serve options workers`), `field` for a field path (`deployments[0].model.name`).
 */
export type PathStyle = 'document' | 'field';

function valueAt(root: unknown, pointer: string): unknown {
  let at = root;
  for (const part of pointer.split('/').slice(1)) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return at;
}

/** `what` followed by a JSON pointer as a dotted path, in the given style. */
export function joinPath(what: string, pointer: string, style: PathStyle = 'field'): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const path = parts.reduce(
    (acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`),
    '',
  );
  if (path === '') return what;
  if (style === 'document') return `${what} ${path}`;
  return path.startsWith('[') ? `${what}${path}` : `${what}.${path}`;
}

function describeError(error: ErrorObject, root: unknown, what: string, style: PathStyle): string {
  const at = joinPath(what, error.instancePath, style);
  if (error.keyword === 'additionalProperties') {
    return `${at}: unknown key '${(error.params as { additionalProperty: string }).additionalProperty}'`;
  }
  if (error.keyword === 'required') {
    return `${at}: missing required key '${(error.params as { missingProperty: string }).missingProperty}'`;
  }
  return `${at} is ${describeValue(valueAt(root, error.instancePath))}: ${error.message ?? 'invalid'}`;
}

/** Checks `value` against `schema`; throws InputError naming `what`, the failing path and the value. */
export function validateWith<T extends TSchema>(
  schema: T,
  value: unknown,
  what: string,
  style: PathStyle = 'document',
): Static<T> {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (!validate(value)) {
    const first = validate.errors?.[0];
    throw new InputError(
      first === undefined ? `${what} is invalid` : describeError(first, value, what, style),
    );
  }
  return value as Static<T>;
}
