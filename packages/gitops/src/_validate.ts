/** Validation of input values against TypeBox schemas, with errors that name the path (as in runtime). */
import { Ajv, type ErrorObject } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import { InputError, describeValue } from '@aiedge/protocol';

const ajv = new Ajv({ allErrors: false, strict: true, useDefaults: false });
const compiled = new WeakMap<TSchema, ReturnType<typeof ajv.compile>>();

function valueAt(root: unknown, pointer: string): unknown {
  let at = root;
  for (const part of pointer.split('/').slice(1)) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return at;
}

/** `what` followed by the JSON pointer as a dotted path: `deployments[0].model.name`. */
export function joinPath(what: string, pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), what);
}

function describeError(error: ErrorObject, root: unknown, what: string): string {
  const at = joinPath(what, error.instancePath);
  if (error.keyword === 'additionalProperties') {
    const key = (error.params as { additionalProperty: string }).additionalProperty;
    return `${at}: unknown key '${key}'`;
  }
  if (error.keyword === 'required') {
    const key = (error.params as { missingProperty: string }).missingProperty;
    return `${at}: missing required key '${key}'`;
  }
  return `${at} is ${describeValue(valueAt(root, error.instancePath))}: ${error.message ?? 'invalid'}`;
}

/** Checks `value` against `schema`; throws InputError naming `what` and the failing path. */
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
