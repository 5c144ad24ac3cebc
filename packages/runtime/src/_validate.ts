/** Validation of configuration values against TypeBox schemas, with errors that name the key. */
import { Ajv, type ErrorObject } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import { InputError, describeValue } from '@aiedge/protocol';

const ajv = new Ajv({ allErrors: false, strict: true, useDefaults: false });
const compiled = new WeakMap<TSchema, ReturnType<typeof ajv.compile>>();

const show = (value: unknown): string => describeValue(value);

function valueAt(root: unknown, pointer: string): unknown {
  let at = root;
  for (const part of pointer.split('/').slice(1)) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return at;
}

function dotted(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('');
}

/** A sentence naming the failing path, the value and what was expected. */
export function describeError(error: ErrorObject, root: unknown, what: string): string {
  const path = dotted(error.instancePath);
  const at = path === '' ? what : `${what} ${path}`;
  if (error.keyword === 'additionalProperties') {
    const key = (error.params as { additionalProperty: string }).additionalProperty;
    return `${at === what ? what : at}: unknown key '${key}'`;
  }
  if (error.keyword === 'required') {
    const key = (error.params as { missingProperty: string }).missingProperty;
    return `${at}: missing required key '${key}'`;
  }
  return `${at} is ${show(valueAt(root, error.instancePath))}: ${error.message ?? 'invalid'}`;
}

/** Checks `value` against `schema`; throws InputError naming `what` and the failing key. */
export function validateWith<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (!validate(value)) {
    const first = validate.errors?.[0];
    throw new InputError(first === undefined ? `${what} is invalid` : describeError(first, value, what));
  }
  return value as Static<T>;
}
