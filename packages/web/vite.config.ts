// Builds the dashboard into dist/ (index.html + hashed assets/), with a .gz next to each larger
// text file for the core to send to clients that accept gzip. `npm run dev -w packages/web` serves
// it with hot reload and forwards the API to a core at AIEDGE_CORE_URL (default http://127.0.0.1:8080).
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

const gzipAsync = promisify(gzip);
const COMPRESSIBLE = /\.(js|css|html|svg|json)$/;

/** Writes `<file>.gz` for every compressible output file larger than 1 KiB. */
function precompress(outDir: string): Plugin {
  return {
    name: 'aiedge-precompress',
    apply: 'build',
    async closeBundle() {
      const walk = async (dir: string): Promise<string[]> =>
        (
          await Promise.all(
            (await readdir(dir, { withFileTypes: true })).map((e) =>
              e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
            ),
          )
        ).flat();
      for (const file of await walk(outDir)) {
        if (!COMPRESSIBLE.test(file)) continue;
        const data = await readFile(file);
        if (data.length > 1024) await writeFile(`${file}.gz`, await gzipAsync(data, { level: 9 }));
      }
    },
  };
}

const core = process.env['AIEDGE_CORE_URL'] ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react(), precompress(join(import.meta.dirname, 'dist'))],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
  },
  server: {
    proxy: { '/api': core, '/healthz': core },
  },
});
