/**
 * Request validation of the model registry with TypeBox's compiler: the first problem becomes an
 * InputError that names the path, the value and what was expected
 * (`body.customProperties.foo.metadataType is "X": expected one of "MetadataIntValue", …`).
 * Discriminated unions (`metadataType`, `artifactType`) report against the variant the value names.
 */
import { Kind, type Static, type TObject, type TSchema, type TUnion } from '@sinclair/typebox';
import { TypeCompiler, ValueErrorType, type TypeCheck, type ValueError } from '@sinclair/typebox/compiler';
import type { FastifySchemaCompiler } from 'fastify';
import { InputError, describeValue } from '@aiedge/protocol';

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checkOf(schema: TSchema): TypeCheck<TSchema> {
  let check = checks.get(schema);
  if (check === undefined) {
    check = TypeCompiler.Compile(schema);
    checks.set(schema, check);
  }
  return check;
}

function segments(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** `what` followed by the path of a JSON pointer: `.key`, `[0]`, or `["odd key"]`. */
export function pathOf(what: string, pointer: string | readonly string[]): string {
  const parts = typeof pointer === 'string' ? segments(pointer) : pointer;
  let out = what;
  for (const part of parts) {
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(part)) out += `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function literalOf(schema: TSchema): string | number | boolean | undefined {
  return schema[Kind] === 'Literal' ? (schema['const'] as string | number | boolean) : undefined;
}

function oneOf(values: readonly unknown[]): string {
  return `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
}

/** What a value of `schema` must be, as a phrase after "expected". */
function expectation(schema: TSchema): string {
  const literal = literalOf(schema);
  if (literal !== undefined) return JSON.stringify(literal);
  if (schema[Kind] === 'Union') {
    const values = (schema as TUnion).anyOf.map(literalOf);
    if (values.every((v) => v !== undefined)) return oneOf(values);
  }
  if (typeof schema['description'] === 'string' && /^an? /.test(schema['description']))
    return schema['description'];
  switch (schema['type']) {
    case 'string':
      return schema['minLength'] === 1 ? 'a non-empty string' : 'a string';
    case 'number':
      return 'a number';
    case 'integer':
      return 'an integer';
    case 'boolean':
      return 'a boolean (true or false)';
    case 'array':
      return 'an array';
    case 'object':
      return 'an object';
    default:
      return 'a valid value';
  }
}

/** The key whose literal value tells the variants of a union of objects apart, if there is one. */
function discriminatorOf(variants: readonly TSchema[]): string | undefined {
  const objects = variants.filter((v): v is TObject => v[Kind] === 'Object');
  if (objects.length !== variants.length || objects.length === 0) return undefined;
  const first = objects[0] as TObject;
  return Object.keys(first.properties).find((key) =>
    objects.every((o) => o.properties[key] !== undefined && literalOf(o.properties[key]) !== undefined),
  );
}

function unionMessage(error: ValueError, what: string): string {
  const at = pathOf(what, error.path);
  const variants = (error.schema as TUnion).anyOf;
  const literals = variants.map(literalOf);
  if (literals.every((v) => v !== undefined)) {
    return `${at} is ${describeValue(error.value)}: expected ${oneOf(literals)}`;
  }
  const key = discriminatorOf(variants);
  if (key !== undefined) {
    if (!isRecord(error.value)) return `${at} is ${describeValue(error.value)}: expected an object`;
    const tag = error.value[key];
    const objects = variants as TObject[];
    let index = objects.findIndex((o) => literalOf(o.properties[key] as TSchema) === tag);
    if (index < 0 && tag === undefined) index = objects.findIndex((o) => !(o.required ?? []).includes(key));
    if (index < 0) {
      const tags = objects.map((o) => literalOf(o.properties[key] as TSchema));
      if (tag === undefined) return `${at}: missing required key '${key}' (${oneOf(tags)})`;
      return `${pathOf(at, [key])} is ${describeValue(tag)}: expected ${oneOf(tags)}`;
    }
    const inner = error.errors[index]?.First();
    if (inner !== undefined) return messageOf(inner, what);
  }
  return `${at} is ${describeValue(error.value)}: expected ${expectation(error.schema)}`;
}

function messageOf(error: ValueError, what: string): string {
  const parts = segments(error.path);
  const key = parts[parts.length - 1] ?? '';
  const parent = pathOf(what, parts.slice(0, -1));
  const at = pathOf(what, parts);
  const value = describeValue(error.value);
  const schema = error.schema;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `${parent}: missing required key '${key}'`;
    case ValueErrorType.ObjectAdditionalProperties:
      return `${parent}: unknown key '${key}'`;
    case ValueErrorType.Union:
      return unionMessage(error, what);
    case ValueErrorType.StringMaxLength:
      return `${at} is ${value}: expected at most ${String(schema['maxLength'])} characters`;
    case ValueErrorType.StringMinLength:
      return schema['minLength'] === 1
        ? `${at} is ${value}: expected a non-empty string`
        : `${at} is ${value}: expected at least ${String(schema['minLength'])} characters`;
    case ValueErrorType.StringPattern:
      return `${at} is ${value}: expected ${
        typeof schema['description'] === 'string'
          ? schema['description']
          : `a string matching ${String(schema['pattern'])}`
      }`;
    default:
      return `${at} is ${value}: expected ${expectation(schema)}`;
  }
}

/** Checks `value` against `schema`; throws InputError naming `what` + the failing path and the value. */
export function checkValue<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  const check = checkOf(schema);
  if (check.Check(value)) return value as Static<T>;
  const first = check.Errors(value).First();
  throw new InputError(first === undefined ? `${what} is invalid` : messageOf(first, what));
}

/**
 * Fastify validator compiler for this area's routes: TypeBox, no type coercion (a number is not a
 * string), and errors as InputErrors naming `body.…`, `query.…` or `path.…`.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const what = httpPart === 'querystring' ? 'query' : httpPart === 'params' ? 'path' : (httpPart ?? 'body');
  return (data: unknown) => {
    if (what === 'body' && (data === null || data === undefined)) {
      return {
        error: new InputError(
          'request body is missing: expected a JSON object (content-type: application/json)',
        ),
      };
    }
    try {
      return { value: checkValue(schema, data, what) };
    } catch (error) {
      return { error: error as Error };
    }
  };
};
