/** The `http` model source: one file from an http(s) URL, verified against a required SHA-256 while it streams. */
import { readFile, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { join } from 'node:path';
import { DigestMismatchError } from '@aiedge/oci';
import { InputError, NotFoundError, UnauthorizedError, UnavailableError } from '@aiedge/protocol';
import type { FetchedModel, ModelSource, StepContext } from '../types.js';
import { displayUrl, progressOf, resolveSpecPath, streamToFile } from './_files.js';

/** Settings of {@link HttpSource}. */
export interface HttpSourceSpec {
  readonly url: string;
  /** Expected hex SHA-256 of the content. */
  readonly sha256: string;
  /** PEM CA bundle to trust (relative paths resolve against the pipeline's directory). */
  readonly caFile?: string;
  /** File name to write; default: the URL's last path segment. */
  readonly fileName?: string;
}

const MAX_REDIRECTS = 5;

/** Downloads one file over http(s) and checks its SHA-256. */
export class HttpSource implements ModelSource {
  readonly kind = 'http';
  readonly #spec: HttpSourceSpec;
  readonly #field: string;

  constructor(spec: HttpSourceSpec, field = 'spec.source.http') {
    if (!/^[0-9a-f]{64}$/.test(spec.sha256)) {
      throw new InputError(`${field}.sha256 must be 64 lowercase hex digits`);
    }
    this.#spec = spec;
    this.#field = field;
  }

  /** Streams the file into `dir`, failing (and removing it) when the digest differs. */
  async fetch(context: StepContext, dir: string): Promise<FetchedModel> {
    const shown = displayUrl(this.#spec.url);
    const ca =
      this.#spec.caFile === undefined
        ? undefined
        : await readFile(resolveSpecPath(context.baseDir, this.#spec.caFile));
    const agent = ca === undefined ? undefined : new HttpsAgent({ ca });
    try {
      const { response, url } = await get(this.#spec.url, agent, context.signal, this.#field);
      const name = this.#spec.fileName ?? fileNameOf(url);
      const total = Number(response.headers['content-length']);
      const path = join(dir, name);
      const written = await streamToFile(response, path, {
        signal: context.signal,
        onBytes: progressOf(context, shown, Number.isFinite(total) ? total : undefined),
      });
      if (written.sha256 !== this.#spec.sha256) {
        await rm(path, { force: true });
        throw new DigestMismatchError(
          `${shown}: downloaded content has sha256 ${written.sha256}, but ${this.#field}.sha256 is ${this.#spec.sha256}`,
        );
      }
      context.log(`downloaded ${shown} (${written.bytes} bytes, sha256 verified)`);
      return {
        dir,
        files: [{ path: name, bytes: written.bytes, sha256: written.sha256 }],
        origin: `${shown}#sha256=${written.sha256}`,
      };
    } finally {
      agent?.destroy();
    }
  }
}

/** The last path segment of a URL, as a safe file name. */
function fileNameOf(url: URL): string {
  let last = url.pathname.split('/').pop() ?? '';
  try {
    last = decodeURIComponent(last);
  } catch {
    // keep it encoded
  }
  last = last.replace(/[/\\\0]/g, '_');
  return last === '' || last === '.' || last === '..' ? 'model.onnx' : last;
}

/** GETs `url`, following up to {@link MAX_REDIRECTS} redirects; resolves with a 200 response. */
async function get(
  start: string,
  agent: HttpsAgent | undefined,
  signal: AbortSignal,
  field: string,
): Promise<{ response: IncomingMessage; url: URL }> {
  let url = new URL(start);
  for (let hop = 0; ; hop++) {
    const shown = displayUrl(url.toString());
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InputError(`${field}.url ${shown} leads to unsupported scheme ${url.protocol}`);
    }
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
        url,
        {
          method: 'GET',
          headers: { 'user-agent': 'aiedge-pipeline/0.1', accept: '*/*' },
          signal,
          ...(url.protocol === 'https:' && agent !== undefined ? { agent } : {}),
        },
        resolve,
      );
      req.on('error', (error) =>
        reject(
          signal.aborted
            ? error
            : new UnavailableError(`cannot download ${shown}: ${error.message}`, { cause: error }),
        ),
      );
      req.end();
    });
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location !== undefined) {
      response.resume();
      if (hop >= MAX_REDIRECTS) throw new UnavailableError(`${shown}: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(response.headers.location, url);
      continue;
    }
    if (status === 200) return { response, url };
    response.resume();
    const message = `GET ${shown} answered HTTP ${status}`;
    if (status === 404 || status === 410) throw new NotFoundError(message);
    if (status === 401 || status === 403) throw new UnauthorizedError(message);
    if (status >= 500 || status === 429) throw new UnavailableError(message);
    throw new InputError(message);
  }
}
