import { Command, CommanderError } from 'commander';
import { isAiEdgeError } from '@aiedge/protocol';

/**
 * The verbs, each loaded only when needed: a site agent or a one-shot command loads its own
 * packages, not the whole system (memory and start-up time; `aiedge --help` loads them all).
 */
const VERBS: Readonly<Record<string, () => Promise<Command>>> = {
  serve: async () => (await import('@aiedge/runtime')).serveCommand(),
  model: async () => (await import('./model-command.js')).modelCommand(),
  registry: async () => (await import('./registry-command.js')).registryCommand(),
  image: async () => (await import('./image-command.js')).imageCommand(),
  gitops: async () => (await import('./gitops-command.js')).gitopsCommand(),
  pipeline: async () => (await import('./pipeline-command.js')).pipelineCommand(),
  core: async () => (await import('./core-command.js')).coreCommand(),
  agent: async () => (await import('./agent-command.js')).agentCommand(),
  quickstart: async () => (await import('./quickstart-command.js')).quickstartCommand(),
};

/** Version of the aiedge command, from its package.json. */
export const CLI_VERSION = '0.1.0';

/** The verb `argv` runs (its first word that is not an option), when it is one of ours. */
function verbOf(argv: readonly string[]): string | undefined {
  const first = argv.find((a) => !a.startsWith('-'));
  return first !== undefined && Object.hasOwn(VERBS, first) ? first : undefined;
}

/** Builds the `aiedge` command tree: every verb, or only `only` when given. */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('aiedge')
    .description('ai-edge: deliver machine learning models to near-edge sites')
    .version(CLI_VERSION)
    .showHelpAfterError()
    // Program options only before the verb, so verbs may have their own --version (a model version).
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  for (const [verb, load] of Object.entries(VERBS)) {
    if (only === undefined || only === verb) program.addCommand(await load());
  }
  program.addHelpText(
    'after',
    `
Examples:
  $ aiedge model example --out ./models
  $ aiedge serve --model-repository ./models
  $ aiedge serve --help`,
  );
  return program;
}

/** Runs the CLI with `argv` (without node and script) and resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const program = await buildProgram(verbOf(argv));
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (isAiEdgeError(error) && error.status < 500) {
      console.error(`aiedge: ${error.message}`);
      return 2;
    }
    // An unreachable service is reported by its message; stack traces are for bugs.
    if (isAiEdgeError(error) && error.status === 503) {
      console.error(`aiedge: ${error.message}`);
      return 1;
    }
    console.error(`aiedge: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  }
}
