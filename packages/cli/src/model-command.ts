import { resolve } from 'node:path';
import { Command } from 'commander';
import { EXAMPLE_MODEL_NAME, collect, integer, writeExampleModelRepository } from '@aiedge/runtime';

/** `aiedge model`: work with models. */
export function modelCommand(): Command {
  const model = new Command('model').description('Work with models');
  model
    .command('example')
    .description(`Write the example ONNX model (${EXAMPLE_MODEL_NAME}) into a model repository directory`)
    .requiredOption('--out <dir>', 'model repository directory to write into')
    .option(
      '--model-version <n>',
      'model version to write; repeatable (default 1)',
      (v, prev: string[] | undefined) => collect(v, prev),
    )
    .addHelpText(
      'after',
      `
The example model is a tiny linear classifier made by ai-edge's own code: input 'features'
FP32 [batch, 4], outputs 'scores' FP32 [batch, 3] and 'label' INT64 [batch]. Each version
has different weights, so a rollout from v1 to v2 is visible in the scores.

Examples:
  $ aiedge model example --out ./models
  $ aiedge model example --out ./models --model-version 1 --model-version 2
  $ aiedge serve --model-repository ./models
`,
    )
    .action(async (flags: { out: string; modelVersion?: string[] }) => {
      const versions = (flags.modelVersion ?? ['1']).map((v) => integer(v));
      const paths = await writeExampleModelRepository(resolve(flags.out), versions);
      for (const p of paths) console.log(p);
    });
  return model;
}
