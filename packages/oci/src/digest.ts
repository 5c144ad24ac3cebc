/** Content digests (`sha256:<64 hex>`), the identity of every blob. */
import { createHash, type Hash } from 'node:crypto';
import { InputError, describeValue } from '@aiedge/protocol';

/** A content digest such as `sha256:9f86…`. */
export type Digest = `sha256:${string}`;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** True when `value` is a well-formed sha256 digest. */
export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST.test(value);
}

/** Checks a digest string; throws InputError naming `what` and the value otherwise. */
export function parseDigest(value: unknown, what = 'digest'): Digest {
  if (!isDigest(value)) {
    throw new InputError(`${what} is ${describeValue(value, 90)}, expected sha256:<64 lowercase hex digits>`);
  }
  return value;
}

/** The digest of some bytes. */
export function digestOf(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The hex part of a digest (its file name in the store). */
export function hexOf(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** A running sha256 over streamed bytes. */
export class Digester {
  readonly #hash: Hash = createHash('sha256');
  #size = 0;

  /** Adds bytes. */
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** The digest of everything seen (call once). */
  digest(): Digest {
    return `sha256:${this.#hash.digest('hex')}`;
  }
}
