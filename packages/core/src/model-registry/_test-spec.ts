// Test helper (left out of the build): the upstream Kubeflow Model Registry OpenAPI document, read
// in place from ../shared/specs, and a checker that validates response bodies against the schema
// the document gives for that operation and status.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

/** Where the OpenAPI document is read from: `../shared/specs/` next to the repository. */
export const SPEC_PATH = fileURLToPath(
  new URL('../../../../../shared/specs/kubeflow-model-registry.yaml', import.meta.url),
);

type Json = Record<string, unknown>;

interface Operation {
  readonly operationId: string;
  readonly responses: Record<string, { $ref?: string }>;
}

interface PathEntry {
  readonly template: string;
  readonly pattern: RegExp;
  readonly operations: Record<string, Operation>;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * OpenAPI 3.0 → JSON Schema where Ajv needs it: `nullable` becomes a `null` type, and a `oneOf`
 * with a `discriminator` mapping becomes "the tag is one of the mapped names, and the schema it
 * names applies" (what the discriminator means; plain `oneOf` would fail on overlapping variants).
 */
function convert(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(convert);
  if (typeof node !== 'object' || node === null) return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) out[key] = convert(value);
  if (out['nullable'] === true && typeof out['type'] === 'string') out['type'] = [out['type'], 'null'];
  delete out['nullable'];
  const discriminator = out['discriminator'] as
    { propertyName: string; mapping?: Record<string, string> } | undefined;
  if (discriminator?.mapping !== undefined && Array.isArray(out['oneOf'])) {
    const tag = discriminator.propertyName;
    const mapping = Object.entries(discriminator.mapping);
    delete out['oneOf'];
    delete out['discriminator'];
    out['type'] = 'object';
    out['required'] = [tag];
    out['properties'] = { [tag]: { enum: mapping.map(([name]) => name) } };
    out['allOf'] = mapping.map(([name, ref]) => ({
      if: { properties: { [tag]: { const: name } } },
      then: { $ref: ref },
    }));
  }
  return out;
}

/** The OpenAPI document and validators of its component schemas. */
export class RegistrySpec {
  readonly #doc: Json;
  readonly #ajv: Ajv;
  readonly #paths: PathEntry[];
  readonly #validators = new Map<string, ValidateFunction>();
  /** operationIds a checked response belonged to. */
  readonly covered = new Set<string>();
  /** `operationId status` of error responses whose status the document does not list. */
  readonly undocumented = new Set<string>();

  constructor(doc: Json) {
    this.#doc = doc;
    const components = doc['components'] as Json;
    this.#ajv = new Ajv({ strict: false, allErrors: true });
    this.#ajv.addFormat('int64', { type: 'string', validate: (s: string) => /^-?[0-9]+$/.test(s) });
    this.#ajv.addFormat('int32', { type: 'string', validate: (s: string) => /^-?[0-9]+$/.test(s) });
    this.#ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });
    this.#ajv.addFormat('byte', { type: 'string', validate: (s: string) => BASE64.test(s) });
    this.#ajv.addFormat('uri', {
      type: 'string',
      validate: (s: string) => {
        try {
          new URL(s);
          return true;
        } catch {
          return false;
        }
      },
    });
    this.#ajv.addSchema({ $id: 'mr', components: { schemas: convert(components['schemas']) } });
    this.#paths = Object.entries(doc['paths'] as Record<string, Json>).map(([template, item]) => ({
      template,
      pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
      operations: Object.fromEntries(
        ['get', 'post', 'patch', 'put', 'delete']
          .filter((m) => item[m] !== undefined)
          .map((m) => [m.toUpperCase(), item[m] as Operation]),
      ),
    }));
  }

  /** The validator of `#/components/schemas/<name>`. */
  validator(name: string): ValidateFunction {
    let validate = this.#validators.get(name);
    if (validate === undefined) {
      validate = this.#ajv.getSchema(`mr#/components/schemas/${name}`);
      assert.ok(validate, `the document has no component schema ${name}`);
      this.#validators.set(name, validate);
    }
    return validate;
  }

  /** Asserts that `body` is a valid `<name>`. */
  assertSchema(name: string, body: unknown, context: string): void {
    const validate = this.validator(name);
    if (!validate(body)) {
      assert.fail(
        `${context}: body is not a valid ${name}: ${this.#ajv.errorsText(validate.errors, { dataVar: 'body' })}\n` +
          JSON.stringify(body, null, 2),
      );
    }
  }

  /** The operation of `method path` (path without query), if the document has it. */
  operation(method: string, path: string): Operation | undefined {
    const entry = this.#paths.find((p) => p.pattern.test(path));
    return entry?.operations[method.toUpperCase()];
  }

  /**
   * Validates a response body against the schema the document gives for its operation and status.
   * An error status the operation does not list is checked against `Error` and recorded; a success
   * status it does not list fails.
   */
  checkResponse(method: string, url: string, status: number, body: unknown): void {
    const path = url.split('?')[0] as string;
    const context = `${method} ${url} → ${status}`;
    const operation = this.operation(method, path);
    if (operation === undefined) {
      assert.ok(status >= 400, `${context}: the document has no such operation`);
      this.assertSchema('Error', body, context);
      return;
    }
    this.covered.add(operation.operationId);
    const response = operation.responses[String(status)];
    if (response === undefined) {
      assert.ok(status >= 400, `${context}: ${operation.operationId} does not list status ${status}`);
      this.undocumented.add(`${operation.operationId} ${status}`);
      this.assertSchema('Error', body, context);
      return;
    }
    const ref = response.$ref as string;
    const name = ref.replace('#/components/responses/', '');
    const definition = (this.#doc['components'] as { responses: Record<string, Json> }).responses[name] as {
      content: Record<string, { schema: { $ref: string } }>;
    };
    const schemaRef = definition.content['application/json']?.schema.$ref as string;
    this.assertSchema(schemaRef.replace('#/components/schemas/', ''), body, context);
  }
}

/** The document, or why the tests that need it skip (in CI a missing document is an error). */
export function loadRegistrySpec():
  { spec: RegistrySpec; skip?: undefined } | { spec?: undefined; skip: string } {
  if (!existsSync(SPEC_PATH)) {
    const why = `the Kubeflow Model Registry OpenAPI document is missing at ${SPEC_PATH}`;
    if (process.env['CI'] === 'true') throw new Error(why);
    return { skip: why };
  }
  return { spec: new RegistrySpec(parse(readFileSync(SPEC_PATH, 'utf8')) as Json) };
}
