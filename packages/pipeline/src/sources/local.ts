/** The `local` model source: a file or directory on this machine, copied into the workspace. */
import { stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { NotFoundError } from '@aiedge/protocol';
import type { FetchedModel, ModelSource, StepContext } from '../types.js';
import { copyTree, resolveSpecPath, sortFiles } from './_files.js';

/** Settings of {@link LocalSource}. */
export interface LocalSourceSpec {
  /** File or directory; relative paths resolve against the pipeline's directory. */
  readonly path: string;
}

/** Copies a local file or directory tree into the model directory. */
export class LocalSource implements ModelSource {
  readonly kind = 'local';
  readonly #spec: LocalSourceSpec;
  readonly #field: string;

  constructor(spec: LocalSourceSpec, field = 'spec.source.local') {
    this.#spec = spec;
    this.#field = field;
  }

  /** Copies the file (keeping its name) or the directory's contents into `dir`. */
  async fetch(context: StepContext, dir: string): Promise<FetchedModel> {
    const path = resolveSpecPath(context.baseDir, this.#spec.path);
    const found = await stat(path).catch(() => undefined);
    if (found === undefined || (!found.isFile() && !found.isDirectory())) {
      throw new NotFoundError(`${this.#field}.path: ${path} is not a file or directory`);
    }
    const files = await copyTree(path, dir, context);
    if (files.length === 0) throw new NotFoundError(`${this.#field}.path: directory ${path} holds no files`);
    context.log(`copied ${files.length} file(s) from ${path}`);
    return { dir, files: sortFiles(files), origin: pathToFileURL(path).toString() };
  }
}
