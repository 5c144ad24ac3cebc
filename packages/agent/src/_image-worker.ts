/**
 * Child-process entry of {@link ImageCache} (images.ts): pulls or unpacks one image and exits, so
 * the memory a pull or an unpack of a large layer takes goes back to the system with the process
 * and the agent stays small while it idles. The job arrives over IPC (credentials never in argv);
 * log lines and the result go back over IPC.
 */
import { ContentStore, type Digest } from '@aiedge/oci';
import type { Logger } from '@aiedge/telemetry';
import { ImageCache, type ImageWorkerJob, type ImageWorkerMessage } from './images.js';

function send(message: ImageWorkerMessage): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

function ipcLogger(fields: Record<string, unknown> = {}): Logger {
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, more?: Record<string, unknown>) => {
      const all = { ...fields, ...more };
      const err = all['err'];
      if (err instanceof Error) all['err'] = { name: err.name, message: err.message };
      void send({ log: { level, msg, fields: all } });
    };
  return {
    level: 'debug',
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (more) => ipcLogger({ ...fields, ...more }),
  };
}

async function run(job: ImageWorkerJob): Promise<void> {
  try {
    const store = await ContentStore.open(job.storeDir);
    const cache = new ImageCache({
      store,
      dir: job.dir,
      registry: job.registry,
      logger: ipcLogger(),
      maxLayerBytes: job.maxLayerBytes,
      isolate: false,
    });
    try {
      if (job.kind === 'pull') {
        await send({ pulled: await cache.pull(job.image, job.digest) });
      } else if (job.kind === 'ensure') {
        await send({ unpacked: (await cache.ensure(job.image, job.digest)).digest });
      } else {
        await send({ unpacked: (await cache.unpack(job.digest as Digest)).digest });
      }
    } finally {
      await cache.close();
    }
    process.exit(0);
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    await send({ error: { name: e.name, message: e.message } });
    process.exit(1);
  }
}

process.once('message', (job: ImageWorkerJob) => void run(job));
