/**
 * OTLP/HTTP request decoding: `ExportMetricsServiceRequest` and `ExportTraceServiceRequest` from
 * binary protobuf (`application/x-protobuf`) or from OTLP JSON (`application/json`, the protobuf
 * JSON mapping with OTLP's rules: lowerCamelCase keys, 64-bit integers as decimal strings or
 * numbers, trace and span ids as hex, enums as integers), into one normalized shape:
 *
 * ```
 * OtlpMetricsRequest { resourceMetrics: [{ resource: { attributes }, schemaUrl,
 *   scopeMetrics: [{ scope: { name, version, attributes }, schemaUrl,
 *     metrics: [{ name, description, unit, data }] }] }] }
 *
 * data (undefined when the metric carries none) is one of
 *   { type: 'gauge', dataPoints: NumberDataPoint[] }
 *   { type: 'sum', aggregationTemporality, isMonotonic, dataPoints: NumberDataPoint[] }
 *   { type: 'histogram', aggregationTemporality, dataPoints: HistogramDataPoint[] }
 *   { type: 'exponentialHistogram', aggregationTemporality, dataPoints: ExponentialHistogramDataPoint[] }
 *   { type: 'summary', dataPoints: SummaryDataPoint[] }
 *
 * OtlpTracesRequest { resourceSpans: [{ resource, schemaUrl, scopeSpans: [{ scope, schemaUrl,
 *   spans: [{ traceId, spanId, parentSpanId, traceState, flags, name, kind, startTimeUnixNano,
 *     endTimeUnixNano, attributes, events, links, status: { code, message } }] }] }] }
 * ```
 *
 * Conventions of the normalized shape: timestamps (`…UnixNano`) are `bigint` nanoseconds; counts
 * (`count`, `bucketCounts`, `zeroCount`) and integer values (`asInt`, `intValue`) are `number`
 * (exact up to 2^53); attributes are a plain record of {@link OtlpAttributeValue} (the last of
 * repeated keys wins); ids are lowercase hex (`parentSpanId` is `''` for a root span); enums are
 * names (`'cumulative'`, `'server'`, `'error'`). Fields absent on the wire take their protobuf
 * default (0, `''`, `[]`), except the optional `sum`, `min` and `max` of histograms, which stay
 * `undefined`. Every malformed input raises an InputError that names the path and the value.
 */
import { ErrorCodes, InputError, describeValue } from '@aiedge/protocol';
import { OtlpTypes, TO_OBJECT_OPTIONS } from './_otlp-proto.js';

/** The two OTLP/HTTP body encodings. */
export const OtlpEncodings = ['protobuf', 'json'] as const;
/** One of {@link OtlpEncodings}. */
export type OtlpEncoding = (typeof OtlpEncodings)[number];

/** An attribute value (OTLP `AnyValue`): `null` for an empty value, `Uint8Array` for bytes. */
export type OtlpAttributeValue =
  | string
  | number
  | boolean
  | Uint8Array
  | null
  | readonly OtlpAttributeValue[]
  | { readonly [key: string]: OtlpAttributeValue };

/** Attributes by key. */
export type OtlpAttributes = Readonly<Record<string, OtlpAttributeValue>>;

/** The entity that produced the telemetry (e.g. `service.name`, `aiedge.site`). */
export interface OtlpResource {
  readonly attributes: OtlpAttributes;
}

/** The instrumentation scope (meter or tracer) that recorded the telemetry. */
export interface OtlpScope {
  readonly name: string;
  readonly version: string;
  readonly attributes: OtlpAttributes;
}

/** Aggregation temporality of sums and histograms. */
export type OtlpTemporality = 'unspecified' | 'delta' | 'cumulative';

/** One point of a gauge or a sum. */
export interface OtlpNumberDataPoint {
  readonly attributes: OtlpAttributes;
  readonly startTimeUnixNano: bigint;
  readonly timeUnixNano: bigint;
  /** `asDouble`, or `asInt` as a number. */
  readonly value: number;
  readonly flags: number;
}

/** One point of an explicit-bucket histogram: `bucketCounts` has one more entry than `explicitBounds`. */
export interface OtlpHistogramDataPoint {
  readonly attributes: OtlpAttributes;
  readonly startTimeUnixNano: bigint;
  readonly timeUnixNano: bigint;
  readonly count: number;
  readonly sum: number | undefined;
  readonly bucketCounts: readonly number[];
  readonly explicitBounds: readonly number[];
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly flags: number;
}

/** Buckets of one sign of an exponential histogram. */
export interface OtlpExponentialBuckets {
  readonly offset: number;
  readonly bucketCounts: readonly number[];
}

/** One point of an exponential histogram. */
export interface OtlpExponentialHistogramDataPoint {
  readonly attributes: OtlpAttributes;
  readonly startTimeUnixNano: bigint;
  readonly timeUnixNano: bigint;
  readonly count: number;
  readonly sum: number | undefined;
  readonly scale: number;
  readonly zeroCount: number;
  readonly zeroThreshold: number;
  readonly positive: OtlpExponentialBuckets;
  readonly negative: OtlpExponentialBuckets;
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly flags: number;
}

/** One point of a summary (quantiles computed by the producer). */
export interface OtlpSummaryDataPoint {
  readonly attributes: OtlpAttributes;
  readonly startTimeUnixNano: bigint;
  readonly timeUnixNano: bigint;
  readonly count: number;
  readonly sum: number;
  readonly quantileValues: readonly { readonly quantile: number; readonly value: number }[];
  readonly flags: number;
}

/** The data of a metric, by type. */
export type OtlpMetricData =
  | { readonly type: 'gauge'; readonly dataPoints: readonly OtlpNumberDataPoint[] }
  | {
      readonly type: 'sum';
      readonly aggregationTemporality: OtlpTemporality;
      readonly isMonotonic: boolean;
      readonly dataPoints: readonly OtlpNumberDataPoint[];
    }
  | {
      readonly type: 'histogram';
      readonly aggregationTemporality: OtlpTemporality;
      readonly dataPoints: readonly OtlpHistogramDataPoint[];
    }
  | {
      readonly type: 'exponentialHistogram';
      readonly aggregationTemporality: OtlpTemporality;
      readonly dataPoints: readonly OtlpExponentialHistogramDataPoint[];
    }
  | { readonly type: 'summary'; readonly dataPoints: readonly OtlpSummaryDataPoint[] };

/** One metric and its points. */
export interface OtlpMetric {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
  /** Undefined when the metric carries no data. */
  readonly data: OtlpMetricData | undefined;
}

/** Metrics of one instrumentation scope. */
export interface OtlpScopeMetrics {
  readonly scope: OtlpScope;
  readonly schemaUrl: string;
  readonly metrics: readonly OtlpMetric[];
}

/** Metrics of one resource. */
export interface OtlpResourceMetrics {
  readonly resource: OtlpResource;
  readonly schemaUrl: string;
  readonly scopeMetrics: readonly OtlpScopeMetrics[];
}

/** A decoded `ExportMetricsServiceRequest`. */
export interface OtlpMetricsRequest {
  readonly resourceMetrics: readonly OtlpResourceMetrics[];
}

/** Span kinds by their OTLP number. */
export const OtlpSpanKinds = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const;
/** One of {@link OtlpSpanKinds}. */
export type OtlpSpanKind = (typeof OtlpSpanKinds)[number];

/** Span status codes by their OTLP number. */
export const OtlpStatusCodes = ['unset', 'ok', 'error'] as const;
/** One of {@link OtlpStatusCodes}. */
export type OtlpStatusCode = (typeof OtlpStatusCodes)[number];

/** A time-stamped event inside a span. */
export interface OtlpSpanEvent {
  readonly timeUnixNano: bigint;
  readonly name: string;
  readonly attributes: OtlpAttributes;
}

/** A link from a span to another span. */
export interface OtlpSpanLink {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceState: string;
  readonly attributes: OtlpAttributes;
}

/** One span. */
export interface OtlpSpan {
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** 16 lowercase hex digits. */
  readonly spanId: string;
  /** 16 lowercase hex digits, or `''` for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly flags: number;
  readonly name: string;
  readonly kind: OtlpSpanKind;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly attributes: OtlpAttributes;
  readonly events: readonly OtlpSpanEvent[];
  readonly links: readonly OtlpSpanLink[];
  readonly status: { readonly code: OtlpStatusCode; readonly message: string };
}

/** Spans of one instrumentation scope. */
export interface OtlpScopeSpans {
  readonly scope: OtlpScope;
  readonly schemaUrl: string;
  readonly spans: readonly OtlpSpan[];
}

/** Spans of one resource. */
export interface OtlpResourceSpans {
  readonly resource: OtlpResource;
  readonly schemaUrl: string;
  readonly scopeSpans: readonly OtlpScopeSpans[];
}

/** A decoded `ExportTraceServiceRequest`. */
export interface OtlpTracesRequest {
  readonly resourceSpans: readonly OtlpResourceSpans[];
}

/** What a receiver refused of an accepted request (OTLP `partial_success`). */
export interface OtlpPartialSuccess {
  /** Data points (metrics) or spans (traces) that were rejected. */
  readonly rejected: number;
  /** Why, for the sender's logs. */
  readonly errorMessage: string;
}

/** Decodes an OTLP `ExportMetricsServiceRequest` body; throws an InputError naming what is wrong. */
export function decodeOtlpMetrics(body: Uint8Array, encoding: OtlpEncoding): OtlpMetricsRequest {
  const what = 'OTLP metrics request';
  const raw =
    encoding === 'protobuf'
      ? decodeProtobuf(body, OtlpTypes.ExportMetricsServiceRequest, what)
      : decodeJson(body, what);
  const r = new Reader(encoding);
  const root = r.object(raw, what);
  return {
    resourceMetrics: r.array(root['resourceMetrics'], `${what} resourceMetrics`, (rm, path) => {
      const o = r.object(rm, path);
      return {
        resource: r.resource(o['resource'], `${path}.resource`),
        schemaUrl: r.string(o['schemaUrl'], `${path}.schemaUrl`),
        scopeMetrics: r.array(o['scopeMetrics'], `${path}.scopeMetrics`, (sm, smPath) => {
          const s = r.object(sm, smPath);
          return {
            scope: r.scope(s['scope'], `${smPath}.scope`),
            schemaUrl: r.string(s['schemaUrl'], `${smPath}.schemaUrl`),
            metrics: r.array(s['metrics'], `${smPath}.metrics`, (m, mPath) => r.metric(m, mPath)),
          };
        }),
      };
    }),
  };
}

/** Decodes an OTLP `ExportTraceServiceRequest` body; throws an InputError naming what is wrong. */
export function decodeOtlpTraces(body: Uint8Array, encoding: OtlpEncoding): OtlpTracesRequest {
  const what = 'OTLP traces request';
  const raw =
    encoding === 'protobuf'
      ? decodeProtobuf(body, OtlpTypes.ExportTraceServiceRequest, what)
      : decodeJson(body, what);
  const r = new Reader(encoding);
  const root = r.object(raw, what);
  return {
    resourceSpans: r.array(root['resourceSpans'], `${what} resourceSpans`, (rs, path) => {
      const o = r.object(rs, path);
      return {
        resource: r.resource(o['resource'], `${path}.resource`),
        schemaUrl: r.string(o['schemaUrl'], `${path}.schemaUrl`),
        scopeSpans: r.array(o['scopeSpans'], `${path}.scopeSpans`, (ss, ssPath) => {
          const s = r.object(ss, ssPath);
          return {
            scope: r.scope(s['scope'], `${ssPath}.scope`),
            schemaUrl: r.string(s['schemaUrl'], `${ssPath}.schemaUrl`),
            spans: r.array(s['spans'], `${ssPath}.spans`, (span, spanPath) => r.span(span, spanPath)),
          };
        }),
      };
    }),
  };
}

/**
 * Encodes the OTLP response to an export request of `signal` (`ExportMetricsServiceResponse` or
 * `ExportTraceServiceResponse`) in `encoding`; empty unless something was rejected.
 */
export function encodeOtlpResponse(
  signal: 'metrics' | 'traces',
  encoding: OtlpEncoding,
  partial?: OtlpPartialSuccess,
): Uint8Array {
  const rejectedKey = signal === 'metrics' ? 'rejectedDataPoints' : 'rejectedSpans';
  const partialSuccess =
    partial === undefined || (partial.rejected === 0 && partial.errorMessage === '')
      ? undefined
      : { [rejectedKey]: String(partial.rejected), errorMessage: partial.errorMessage };
  const message = partialSuccess === undefined ? {} : { partialSuccess };
  if (encoding === 'json') return new TextEncoder().encode(JSON.stringify(message));
  const type =
    signal === 'metrics' ? OtlpTypes.ExportMetricsServiceResponse : OtlpTypes.ExportTraceServiceResponse;
  return type.encode(type.fromObject(message)).finish();
}

type ProtoType = (typeof OtlpTypes)[keyof typeof OtlpTypes];

function decodeProtobuf(body: Uint8Array, type: ProtoType, what: string): unknown {
  try {
    return type.toObject(type.decode(body), TO_OBJECT_OPTIONS);
  } catch (error) {
    const reason =
      error instanceof RangeError && /call stack/i.test(error.message)
        ? 'nested too deeply'
        : (error as Error).message;
    throw new InputError(`${what} is not a valid protobuf ${type.name}: ${reason}`, { cause: error });
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeJson(body: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch (error) {
    throw new InputError(`${what} is not valid UTF-8 JSON`, {
      cause: error,
      code: ErrorCodes.MALFORMED_JSON,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const reason = error instanceof RangeError ? 'nested too deeply' : (error as Error).message;
    throw new InputError(`${what} is not valid JSON: ${reason}`, {
      cause: error,
      code: ErrorCodes.MALFORMED_JSON,
    });
  }
}

/** Deepest nesting of array and key-value-list attribute values accepted. */
const MAX_ANY_VALUE_DEPTH = 32;

const TEMPORALITIES: readonly OtlpTemporality[] = ['unspecified', 'delta', 'cumulative'];
const TEMPORALITY_NAMES = [
  'AGGREGATION_TEMPORALITY_UNSPECIFIED',
  'AGGREGATION_TEMPORALITY_DELTA',
  'AGGREGATION_TEMPORALITY_CUMULATIVE',
];
const KIND_NAMES = OtlpSpanKinds.map((k) => `SPAN_KIND_${k.toUpperCase()}`);
const STATUS_NAMES = OtlpStatusCodes.map((c) => `STATUS_CODE_${c.toUpperCase()}`);

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const HEX = /^[0-9a-fA-F]*$/;

/**
 * Reads the plain object produced by protobufjs (`longs: String`, bytes as Uint8Array) or by
 * JSON.parse into the normalized shape, checking every value and naming its path when it is wrong.
 * Absent (or JSON `null`) fields take their protobuf default.
 */
class Reader {
  readonly #encoding: OtlpEncoding;

  constructor(encoding: OtlpEncoding) {
    this.#encoding = encoding;
  }

  fail(path: string, value: unknown, expected: string): never {
    throw new InputError(`${path} is ${describeValue(value)}: expected ${expected}`);
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
      this.fail(path, value, 'an object');
    }
    return value as Record<string, unknown>;
  }

  array<T>(value: unknown, path: string, item: (value: unknown, path: string) => T): T[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) this.fail(path, value, 'an array');
    return value.map((v, i) => item(v, `${path}[${i}]`));
  }

  string(value: unknown, path: string): string {
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') this.fail(path, value, 'a string');
    return value;
  }

  boolean(value: unknown, path: string): boolean {
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') this.fail(path, value, 'true or false');
    return value;
  }

  /** A 64-bit integer: a decimal string or an integral number. */
  int64(value: unknown, path: string, unsigned: boolean): bigint {
    if (value === undefined || value === null) return 0n;
    const expected = `${unsigned ? 'an unsigned' : 'a'} 64-bit integer (a decimal string or an integer)`;
    let n: bigint;
    if (typeof value === 'number') {
      if (!Number.isInteger(value)) this.fail(path, value, expected);
      n = BigInt(value);
    } else if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) {
      n = BigInt(value);
    } else {
      this.fail(path, value, expected);
    }
    if (unsigned ? n < 0n || n > U64_MAX : n < I64_MIN || n > I64_MAX) this.fail(path, value, expected);
    return n;
  }

  /** An unsigned 64-bit count as a number. */
  count(value: unknown, path: string): number {
    return Number(this.int64(value, path, true));
  }

  /** A 32-bit integer (uint32, sint32, fixed32 or an enum number). */
  int32(value: unknown, path: string, min: number, max: number): number {
    if (value === undefined || value === null) return 0;
    const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.fail(path, value, `an integer from ${min} to ${max}`);
    }
    return n;
  }

  /** A double: a number, or (JSON) a numeric string, "NaN", "Infinity" or "-Infinity". */
  double(value: unknown, path: string): number {
    if (value === undefined || value === null) return 0;
    if (typeof value === 'number') return value;
    if (typeof value === 'string') {
      if (value === 'NaN') return Number.NaN;
      if (value === 'Infinity') return Number.POSITIVE_INFINITY;
      if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
      const n = Number(value);
      if (value.trim() !== '' && Number.isFinite(n)) return n;
    }
    this.fail(path, value, 'a number');
  }

  optionalDouble(value: unknown, path: string): number | undefined {
    return value === undefined || value === null ? undefined : this.double(value, path);
  }

  /** An enum: its number, or (JSON, leniently) its protobuf name. */
  enumeration<T>(value: unknown, path: string, values: readonly T[], names: readonly string[]): T {
    if (typeof value === 'string' && !/^\d+$/.test(value)) {
      const index = names.indexOf(value);
      if (index < 0) this.fail(path, value, `one of ${names.join(', ')} (or its number)`);
      return values[index] as T;
    }
    const n = this.int32(value, path, 0, values.length - 1);
    return values[n] as T;
  }

  /** Bytes: a Uint8Array (protobuf) or base64 (JSON). */
  bytes(value: unknown, path: string): Uint8Array {
    if (value === undefined || value === null) return new Uint8Array(0);
    if (value instanceof Uint8Array) return new Uint8Array(value);
    if (typeof value === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
      return new Uint8Array(Buffer.from(value, 'base64'));
    }
    this.fail(path, value, 'base64 bytes');
  }

  /** A trace or span id: bytes (protobuf) or hex (JSON) of exactly `length` bytes (or none when optional). */
  id(value: unknown, path: string, length: number, optional: boolean): string {
    let hex: string;
    if (value === undefined || value === null) hex = '';
    else if (value instanceof Uint8Array) hex = Buffer.from(value).toString('hex');
    else if (typeof value === 'string' && HEX.test(value)) hex = value.toLowerCase();
    else this.fail(path, value, `${length * 2} hex digits`);
    if ((hex === '' && optional) || hex.length === length * 2) return hex;
    const shown = value instanceof Uint8Array ? `${value.length} bytes` : describeValue(value);
    const expected = this.#encoding === 'protobuf' ? `${length} bytes` : `${length * 2} hex digits`;
    throw new InputError(`${path} is ${shown}: expected ${expected}${optional ? ' or none' : ''}`);
  }

  anyValue(value: unknown, path: string, depth: number): OtlpAttributeValue {
    if (depth > MAX_ANY_VALUE_DEPTH) {
      throw new InputError(`${path} is nested more than ${MAX_ANY_VALUE_DEPTH} levels deep`);
    }
    const o = this.object(value, path);
    if (o['stringValue'] !== undefined && o['stringValue'] !== null)
      return this.string(o['stringValue'], `${path}.stringValue`);
    if (o['boolValue'] !== undefined && o['boolValue'] !== null)
      return this.boolean(o['boolValue'], `${path}.boolValue`);
    if (o['intValue'] !== undefined && o['intValue'] !== null)
      return Number(this.int64(o['intValue'], `${path}.intValue`, false));
    if (o['doubleValue'] !== undefined && o['doubleValue'] !== null)
      return this.double(o['doubleValue'], `${path}.doubleValue`);
    if (o['arrayValue'] !== undefined && o['arrayValue'] !== null) {
      const a = this.object(o['arrayValue'], `${path}.arrayValue`);
      return this.array(a['values'], `${path}.arrayValue.values`, (v, p) => this.anyValue(v, p, depth + 1));
    }
    if (o['kvlistValue'] !== undefined && o['kvlistValue'] !== null) {
      const kv = this.object(o['kvlistValue'], `${path}.kvlistValue`);
      return this.keyValues(kv['values'], `${path}.kvlistValue.values`, depth + 1);
    }
    if (o['bytesValue'] !== undefined && o['bytesValue'] !== null)
      return this.bytes(o['bytesValue'], `${path}.bytesValue`);
    return null;
  }

  keyValues(value: unknown, path: string, depth = 0): Record<string, OtlpAttributeValue> {
    const out: Record<string, OtlpAttributeValue> = {};
    this.array(value, path, (kv, kvPath) => {
      const o = this.object(kv, kvPath);
      const key = this.string(o['key'], `${kvPath}.key`);
      // defineProperty: a key such as "__proto__" must become a plain own property.
      Object.defineProperty(out, key, {
        value: this.anyValue(o['value'], `${kvPath}.value`, depth),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    });
    return out;
  }

  resource(value: unknown, path: string): OtlpResource {
    const o = this.object(value, path);
    return { attributes: this.keyValues(o['attributes'], `${path}.attributes`) };
  }

  scope(value: unknown, path: string): OtlpScope {
    const o = this.object(value, path);
    return {
      name: this.string(o['name'], `${path}.name`),
      version: this.string(o['version'], `${path}.version`),
      attributes: this.keyValues(o['attributes'], `${path}.attributes`),
    };
  }

  metric(value: unknown, path: string): OtlpMetric {
    const o = this.object(value, path);
    const name = this.string(o['name'], `${path}.name`);
    if (name === '') this.fail(`${path}.name`, o['name'], 'a metric name');
    return {
      name,
      description: this.string(o['description'], `${path}.description`),
      unit: this.string(o['unit'], `${path}.unit`),
      data: this.metricData(o, path),
    };
  }

  metricData(o: Record<string, unknown>, path: string): OtlpMetricData | undefined {
    const present = (key: string) => o[key] !== undefined && o[key] !== null;
    if (present('gauge')) {
      const g = this.object(o['gauge'], `${path}.gauge`);
      return {
        type: 'gauge',
        dataPoints: this.array(g['dataPoints'], `${path}.gauge.dataPoints`, (p, pp) =>
          this.numberPoint(p, pp),
        ),
      };
    }
    if (present('sum')) {
      const s = this.object(o['sum'], `${path}.sum`);
      return {
        type: 'sum',
        aggregationTemporality: this.temporality(
          s['aggregationTemporality'],
          `${path}.sum.aggregationTemporality`,
        ),
        isMonotonic: this.boolean(s['isMonotonic'], `${path}.sum.isMonotonic`),
        dataPoints: this.array(s['dataPoints'], `${path}.sum.dataPoints`, (p, pp) => this.numberPoint(p, pp)),
      };
    }
    if (present('histogram')) {
      const h = this.object(o['histogram'], `${path}.histogram`);
      return {
        type: 'histogram',
        aggregationTemporality: this.temporality(
          h['aggregationTemporality'],
          `${path}.histogram.aggregationTemporality`,
        ),
        dataPoints: this.array(h['dataPoints'], `${path}.histogram.dataPoints`, (p, pp) =>
          this.histogramPoint(p, pp),
        ),
      };
    }
    if (present('exponentialHistogram')) {
      const h = this.object(o['exponentialHistogram'], `${path}.exponentialHistogram`);
      return {
        type: 'exponentialHistogram',
        aggregationTemporality: this.temporality(
          h['aggregationTemporality'],
          `${path}.exponentialHistogram.aggregationTemporality`,
        ),
        dataPoints: this.array(h['dataPoints'], `${path}.exponentialHistogram.dataPoints`, (p, pp) =>
          this.exponentialPoint(p, pp),
        ),
      };
    }
    if (present('summary')) {
      const s = this.object(o['summary'], `${path}.summary`);
      return {
        type: 'summary',
        dataPoints: this.array(s['dataPoints'], `${path}.summary.dataPoints`, (p, pp) =>
          this.summaryPoint(p, pp),
        ),
      };
    }
    return undefined;
  }

  temporality(value: unknown, path: string): OtlpTemporality {
    return this.enumeration(value, path, TEMPORALITIES, TEMPORALITY_NAMES);
  }

  pointBase(o: Record<string, unknown>, path: string, attributesKey = 'attributes') {
    return {
      attributes: this.keyValues(o[attributesKey], `${path}.${attributesKey}`),
      startTimeUnixNano: this.int64(o['startTimeUnixNano'], `${path}.startTimeUnixNano`, true),
      timeUnixNano: this.int64(o['timeUnixNano'], `${path}.timeUnixNano`, true),
      flags: this.int32(o['flags'], `${path}.flags`, 0, 0xffffffff),
    };
  }

  numberPoint(value: unknown, path: string): OtlpNumberDataPoint {
    const o = this.object(value, path);
    let n: number;
    if (o['asDouble'] !== undefined && o['asDouble'] !== null)
      n = this.double(o['asDouble'], `${path}.asDouble`);
    else if (o['asInt'] !== undefined && o['asInt'] !== null)
      n = Number(this.int64(o['asInt'], `${path}.asInt`, false));
    else throw new InputError(`${path} has no value: expected asDouble or asInt`);
    return { ...this.pointBase(o, path), value: n };
  }

  histogramPoint(value: unknown, path: string): OtlpHistogramDataPoint {
    const o = this.object(value, path);
    const bucketCounts = this.array(o['bucketCounts'], `${path}.bucketCounts`, (v, p) => this.count(v, p));
    const explicitBounds = this.array(o['explicitBounds'], `${path}.explicitBounds`, (v, p) =>
      this.double(v, p),
    );
    if (bucketCounts.length !== 0 && bucketCounts.length !== explicitBounds.length + 1) {
      throw new InputError(
        `${path} has ${bucketCounts.length} bucketCounts and ${explicitBounds.length} explicitBounds: expected one more count than bounds`,
      );
    }
    explicitBounds.forEach((bound, i) => {
      if (!Number.isFinite(bound) || (i > 0 && bound <= (explicitBounds[i - 1] as number))) {
        this.fail(`${path}.explicitBounds[${i}]`, bound, 'finite bounds in increasing order');
      }
    });
    return {
      ...this.pointBase(o, path),
      count: this.count(o['count'], `${path}.count`),
      sum: this.optionalDouble(o['sum'], `${path}.sum`),
      bucketCounts,
      explicitBounds,
      min: this.optionalDouble(o['min'], `${path}.min`),
      max: this.optionalDouble(o['max'], `${path}.max`),
    };
  }

  exponentialBuckets(value: unknown, path: string): OtlpExponentialBuckets {
    const o = this.object(value, path);
    return {
      offset: this.int32(o['offset'], `${path}.offset`, -(2 ** 31), 2 ** 31 - 1),
      bucketCounts: this.array(o['bucketCounts'], `${path}.bucketCounts`, (v, p) => this.count(v, p)),
    };
  }

  exponentialPoint(value: unknown, path: string): OtlpExponentialHistogramDataPoint {
    const o = this.object(value, path);
    return {
      ...this.pointBase(o, path),
      count: this.count(o['count'], `${path}.count`),
      sum: this.optionalDouble(o['sum'], `${path}.sum`),
      scale: this.int32(o['scale'], `${path}.scale`, -(2 ** 31), 2 ** 31 - 1),
      zeroCount: this.count(o['zeroCount'], `${path}.zeroCount`),
      zeroThreshold: this.double(o['zeroThreshold'], `${path}.zeroThreshold`),
      positive: this.exponentialBuckets(o['positive'], `${path}.positive`),
      negative: this.exponentialBuckets(o['negative'], `${path}.negative`),
      min: this.optionalDouble(o['min'], `${path}.min`),
      max: this.optionalDouble(o['max'], `${path}.max`),
    };
  }

  summaryPoint(value: unknown, path: string): OtlpSummaryDataPoint {
    const o = this.object(value, path);
    return {
      ...this.pointBase(o, path),
      count: this.count(o['count'], `${path}.count`),
      sum: this.double(o['sum'], `${path}.sum`),
      quantileValues: this.array(o['quantileValues'], `${path}.quantileValues`, (q, qp) => {
        const qo = this.object(q, qp);
        return {
          quantile: this.double(qo['quantile'], `${qp}.quantile`),
          value: this.double(qo['value'], `${qp}.value`),
        };
      }),
    };
  }

  span(value: unknown, path: string): OtlpSpan {
    const o = this.object(value, path);
    const status = this.object(o['status'], `${path}.status`);
    return {
      traceId: this.id(o['traceId'], `${path}.traceId`, 16, false),
      spanId: this.id(o['spanId'], `${path}.spanId`, 8, false),
      parentSpanId: this.id(o['parentSpanId'], `${path}.parentSpanId`, 8, true),
      traceState: this.string(o['traceState'], `${path}.traceState`),
      flags: this.int32(o['flags'], `${path}.flags`, 0, 0xffffffff),
      name: this.string(o['name'], `${path}.name`),
      kind: this.enumeration(o['kind'], `${path}.kind`, OtlpSpanKinds, KIND_NAMES),
      startTimeUnixNano: this.int64(o['startTimeUnixNano'], `${path}.startTimeUnixNano`, true),
      endTimeUnixNano: this.int64(o['endTimeUnixNano'], `${path}.endTimeUnixNano`, true),
      attributes: this.keyValues(o['attributes'], `${path}.attributes`),
      events: this.array(o['events'], `${path}.events`, (e, ep) => {
        const eo = this.object(e, ep);
        return {
          timeUnixNano: this.int64(eo['timeUnixNano'], `${ep}.timeUnixNano`, true),
          name: this.string(eo['name'], `${ep}.name`),
          attributes: this.keyValues(eo['attributes'], `${ep}.attributes`),
        };
      }),
      links: this.array(o['links'], `${path}.links`, (l, lp) => {
        const lo = this.object(l, lp);
        return {
          traceId: this.id(lo['traceId'], `${lp}.traceId`, 16, false),
          spanId: this.id(lo['spanId'], `${lp}.spanId`, 8, false),
          traceState: this.string(lo['traceState'], `${lp}.traceState`),
          attributes: this.keyValues(lo['attributes'], `${lp}.attributes`),
        };
      }),
      status: {
        code: this.enumeration(status['code'], `${path}.status.code`, OtlpStatusCodes, STATUS_NAMES),
        message: this.string(status['message'], `${path}.status.message`),
      },
    };
  }
}
